/**
 * The test bed for `l4fleet backend`, in network namespaces (root):
 *
 *   client ──c0── router ──n0── node      (test-only encapsulating tc program: test/backend-host-encap.bpf.c)
 *                        ──b0── backend   (`l4fleet backend setup` runs here, through the real CLI)
 *                        ──s0── stranger  (sends encapsulated packets from an address that is not a node)
 *
 * The router sends the VIPs to the node; the node wraps each packet and sends it back through the router to the
 * backend's own address (a routed backend: only encapsulation reaches it); the backend answers from the VIP to
 * the client through the router, never through the node. Each side has its own subnet. A bpf file system is
 * mounted for the pins in a temporary directory; cleanup unmounts it and removes every namespace and file.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseAddress } from '@l4fleet/maglev';
import { run } from '@l4fleet/process';
import { createNetnsLab, type NetnsHost, type NetnsLab, type RunResult } from '@l4fleet/test-support/netns';

export const VIP4 = '198.51.100.81';
export const VIP6 = '2001:db8:81:9::1';
/** On the backend's lo before any setup, and given as a VIP too: teardown must leave it there. */
export const VIP4_PREEXISTING = '198.51.100.82';
export const CLIENT = { 4: '198.18.81.2', 6: '2001:db8:81:1::2' } as const;
export const NODE = { 4: '198.18.82.2', 6: '2001:db8:81:2::2' } as const;
export const BACKEND = { 4: '198.18.83.2', 6: '2001:db8:81:3::2' } as const;
export const STRANGER = { 4: '198.18.84.2', 6: '2001:db8:81:4::2' } as const;
export const SERVICE_PORT = 8081;
export const GUE_PORT = 6080;
/** The client's MTU: room for the largest outer header (IPv6 + UDP = 48 B) on the 1500-B underlay. */
export const CLIENT_MTU = 1400;

export type Family = 4 | 6;
export type Mode = 'gue' | 'ipip' | 'gre';
const MODE_NUMBER: Record<Mode, number> = { gue: 0, ipip: 1, gre: 2 };

const root = fileURLToPath(new URL('..', import.meta.url));
export const CLI_BIN = `${root}packages/cli/bin/l4fleet.js`;
const ENCAP_SRC = `${root}test/backend-host-encap.bpf.c`;

/** Network-order address bytes as 32-bit words read in host (little-endian) order, for the C macros. */
function words(addr: string): string {
  const bytes = Buffer.from(parseAddress(addr).bytes);
  const out: string[] = [];
  for (let i = 0; i < bytes.length; i += 4) out.push(`0x${bytes.readUInt32LE(i).toString(16)}`);
  return out.join(',');
}

export interface BackendHostBed {
  readonly lab: NetnsLab;
  readonly client: NetnsHost;
  readonly router: NetnsHost;
  readonly node: NetnsHost;
  readonly backend: NetnsHost;
  readonly stranger: NetnsHost;
  readonly bpffs: string;
  readonly stateDir: string;
  /** `l4fleet backend ARGS --bpffs .. --state-dir ..` in the backend namespace (never rejects). */
  cli(args: readonly string[]): Promise<RunResult>;
  /** Puts the test encapsulation for `mode` with `outer` family on the node's ingress (replacing the last one). */
  encapAt(mode: Mode, outer: Family): Promise<void>;
  /** The node program's counters: packets it encapsulated, packets it saw coming from a VIP. */
  nodeCounters(): Promise<{ encapsulated: number; fromVip: number }>;
  cleanup(): Promise<void>;
}

export async function createBackendHostBed(): Promise<BackendHostBed> {
  const work = mkdtempSync(`${tmpdir()}/l4bh-`);
  const bpffs = `${work}/bpffs`;
  const stateDir = `${work}/state`;
  const objects = `${work}/obj`;
  const nodeBpffs = `${work}/node-bpffs`;
  mkdirSync(bpffs);
  mkdirSync(nodeBpffs);
  mkdirSync(objects);
  const mounted: string[] = [];
  const lab = await createNetnsLab('l4bh');
  const cleanup = async () => {
    await lab.cleanup();
    for (const m of mounted) await run(['umount', m], { allowFailure: true });
    rmSync(work, { recursive: true, force: true });
  };
  try {
    for (const m of [bpffs, nodeBpffs]) {
      await run(['mount', '-t', 'bpf', 'bpf', m]);
      mounted.push(m);
    }
    const client = await lab.host('cli');
    const router = await lab.host('rt');
    const node = await lab.host('node');
    const backend = await lab.host('be');
    const stranger = await lab.host('str');
    await lab.veth(client, 'eth0', router, 'c0');
    await lab.veth(node, 'eth0', router, 'n0');
    await lab.veth(backend, 'eth0', router, 'b0');
    await lab.veth(stranger, 'eth0', router, 's0');
    const subnet = { c0: 81, n0: 82, b0: 83, s0: 84 } as const;
    const routerSetup = ['sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1'];
    routerSetup.push('sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0');
    for (const [dev, n] of Object.entries(subnet)) {
      routerSetup.push(
        `ip addr add 198.18.${n}.1/24 dev ${dev}`,
        `ip addr add 2001:db8:81:${n - 80}::1/64 dev ${dev} nodad`,
      );
    }
    routerSetup.push(`ip link set c0 mtu ${CLIENT_MTU}`);
    routerSetup.push(`ip route add ${VIP4}/32 via ${NODE[4]}`, `ip -6 route add ${VIP6}/128 via ${NODE[6]}`);
    routerSetup.push(`ip route add ${VIP4_PREEXISTING}/32 via ${NODE[4]}`);
    await router.sh(routerSetup.join(' && '));
    const hostSetup = (h: NetnsHost, a: { 4: string; 6: string }, n: number) =>
      h.sh(
        [
          `ip addr add ${a[4]}/24 dev eth0 && ip addr add ${a[6]}/64 dev eth0 nodad`,
          `ip route add default via 198.18.${n}.1 && ip -6 route add default via 2001:db8:81:${n - 80}::1`,
        ].join(' && '),
      );
    await hostSetup(client, CLIENT, 81);
    await client.sh(`ip link set eth0 mtu ${CLIENT_MTU}`);
    await hostSetup(node, NODE, 82);
    await hostSetup(backend, BACKEND, 83);
    await hostSetup(stranger, STRANGER, 84);
    await node.sh('tc qdisc add dev eth0 clsact');
    // Warm the neighbour tables so the first test packet is not an ARP/ND race.
    for (const [h, gw4, gw6] of [
      [node, '198.18.82.1', '2001:db8:81:2::1'],
      [backend, '198.18.83.1', '2001:db8:81:3::1'],
      [client, '198.18.81.1', '2001:db8:81:1::1'],
      [stranger, '198.18.84.1', '2001:db8:81:4::1'],
    ] as const) {
      await h.run(['ping', '-c1', '-W1', gw4], { allowFailure: true });
      await h.run(['ping', '-6', '-c1', '-W1', gw6], { allowFailure: true });
    }
    const compiled = new Map<string, string>();
    const bed: BackendHostBed = {
      lab,
      client,
      router,
      node,
      backend,
      stranger,
      bpffs,
      stateDir,
      cli: (args) =>
        backend.run(['node', CLI_BIN, 'backend', ...args, '--bpffs', bpffs, '--state-dir', stateDir], {
          allowFailure: true,
          timeoutMs: 30_000,
        }),
      async encapAt(mode, outer) {
        const key = `${mode}-${outer}`;
        let obj = compiled.get(key);
        if (obj === undefined) {
          obj = `${objects}/encap-${key}.o`;
          const r = spawnSync('clang', [
            '-O2',
            '-g',
            '-Wall',
            '-Werror',
            '-target',
            'bpf',
            '-I/usr/include/x86_64-linux-gnu',
            `-DMODE=${MODE_NUMBER[mode]}`,
            `-DOUTER6=${outer === 6 ? 1 : 0}`,
            `-DNODE_ADDR=${words(NODE[outer])}`,
            `-DBACKEND_ADDR=${words(BACKEND[outer])}`,
            `-DVIP4_ADDR=${words(VIP4)}`,
            `-DVIP6_ADDR=${words(VIP6)}`,
            `-DGUE_PORT=${GUE_PORT}`,
            '-c',
            ENCAP_SRC,
            '-o',
            obj,
          ]);
          if (r.status !== 0) throw new Error(`clang ${ENCAP_SRC}: ${r.stderr.toString()}`);
          compiled.set(key, obj);
        }
        // tc loads the object with libbpf, which sets up its pin directories on a bpf file system: give it the
        // node's own, or it picks the first one mounted (the backend's) and the teardown check would see them.
        const tc = ['env', `TC_BPF_MNT=${nodeBpffs}`, 'tc', 'filter', 'replace', 'dev', 'eth0', 'ingress'];
        await node.run([...tc, 'pref', '1', 'handle', '1', 'bpf', 'da', 'obj', obj, 'sec', 'tc']);
      },
      async nodeCounters() {
        const filters = JSON.parse((await node.run(['tc', '-j', 'filter', 'show', 'dev', 'eth0', 'ingress'])).stdout);
        const id = (filters as { options?: { prog?: { id: number } } }[]).find((f) => f.options?.prog)?.options?.prog
          ?.id;
        const prog = JSON.parse((await run(['bpftool', '-j', 'prog', 'show', 'id', String(id)])).stdout);
        const [mapId] = prog.map_ids as number[];
        const dump = JSON.parse((await run(['bpftool', '-j', 'map', 'dump', 'id', String(mapId)])).stdout) as {
          formatted: { key: number; value: number };
        }[];
        const at = (k: number) => dump.find((e) => e.formatted.key === k)?.formatted.value ?? 0;
        return { encapsulated: at(0), fromVip: at(1) };
      },
      cleanup,
    };
    return bed;
  } catch (err) {
    await cleanup();
    throw err;
  }
}

/** The backend's service: echoes every byte on each TCP connection, on both VIPs (and the pre-existing VIP). */
export const ECHO_SERVER_PY = `
import socket, threading
def serve(c):
    with c:
        while True:
            d = c.recv(65536)
            if not d: return
            c.sendall(d)
def listen(fam, addr):
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_IP, 15, 1)  # IP_FREEBIND: the VIPs reach lo only with l4fleet backend setup
    s.bind((addr, ${SERVICE_PORT})); s.listen(64)
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()
for fam, addr in ((socket.AF_INET, '${VIP4}'), (socket.AF_INET6, '${VIP6}')):
    threading.Thread(target=listen, args=(fam, addr), daemon=True).start()
print('ready', flush=True)
threading.Event().wait()
`;

/** Sends N bytes to the VIP and reads them back; prints "ok N" only when every byte came back in order. */
export const ECHO_CLIENT_PY = `
import hashlib, os, socket, sys, threading
dst, n = sys.argv[1], int(sys.argv[2])
fam = socket.AF_INET6 if ':' in dst else socket.AF_INET
data = os.urandom(n)
s = socket.create_connection((dst, ${SERVICE_PORT}), timeout=10)
threading.Thread(target=lambda: s.sendall(data), daemon=True).start()
got = bytearray()
while len(got) < n:
    d = s.recv(65536)
    if not d: break
    got += d
s.close()
print('ok', len(got) if hashlib.sha256(got).digest() == hashlib.sha256(data).digest() else 'corrupt', flush=True)
`;

/**
 * Sends one encapsulated ICMP echo request (inner IPv4) the way a node would, from this namespace's own address:
 * argv mode outer-dst inner-src inner-dst [variant]; variant gre-key (GRE with the K bit) or gue-v0 (a GUE
 * variant 0 header) makes it malformed on purpose.
 */
export const SEND_ENCAPSULATED_PY = `
import socket, struct, sys
mode, dst, isrc, idst = sys.argv[1:5]
variant = sys.argv[5] if len(sys.argv) > 5 else ''
def csum(b):
    if len(b) % 2: b += b'\\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b)); s = (s >> 16) + (s & 0xffff); s += s >> 16
    return (~s) & 0xffff
echo = struct.pack('!BBHHH', 8, 0, 0, 0x4c34, 1) + b'l4fleet'
echo = echo[:2] + struct.pack('!H', csum(echo)) + echo[4:]
h = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(echo), 1, 0, 64, 1, 0, socket.inet_aton(isrc), socket.inet_aton(idst))
inner = h[:10] + struct.pack('!H', csum(h)) + h[12:] + echo
fam = socket.AF_INET6 if ':' in dst else socket.AF_INET
if mode == 'gue':
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.sendto((b'\\x00\\x00\\x00\\x00' if variant == 'gue-v0' else b'') + inner, (dst, ${GUE_PORT}))
elif mode == 'ipip':
    s = socket.socket(fam, socket.SOCK_RAW, 4); s.sendto(inner, (dst, 0))
else:
    s = socket.socket(fam, socket.SOCK_RAW, 47)
    gre = b'\\x20\\x00\\x08\\x00\\x00\\x00\\x00\\x07' if variant == 'gre-key' else b'\\x00\\x00\\x08\\x00'
    s.sendto(gre + inner, (dst, 0))
`;

/**
 * Sends COUNT small encapsulated packets the way a node would (inner IPv4 UDP, 18 B of payload, to port 9 of the
 * VIP): argv mode outer-dst inner-src inner-dst count. For measuring the backend program per packet.
 */
export const FLOOD_ENCAPSULATED_PY = `
import socket, struct, sys
mode, dst, isrc, idst, count = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
def csum(b):
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b)); s = (s >> 16) + (s & 0xffff); s += s >> 16
    return (~s) & 0xffff
udp = struct.pack('!HHHH', 40000, 9, 8 + 18, 0) + b'l4fleet-cost-probe'
h = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, socket.inet_aton(isrc), socket.inet_aton(idst))
inner = h[:10] + struct.pack('!H', csum(h)) + h[12:] + udp
fam = socket.AF_INET6 if ':' in dst else socket.AF_INET
if mode == 'gue':
    s = socket.socket(fam, socket.SOCK_DGRAM); payload, port = inner, ${GUE_PORT}
elif mode == 'ipip':
    s = socket.socket(fam, socket.SOCK_RAW, 4); payload, port = inner, 0
else:
    s = socket.socket(fam, socket.SOCK_RAW, 47); payload, port = b'\\x00\\x00\\x08\\x00' + inner, 0
for _ in range(count):
    s.sendto(payload, (dst, port))
`;
