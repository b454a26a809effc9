/**
 * The data-plane test bed, in network namespaces:
 *
 *   client ──veth── router ══ br0 (one L2 segment) ══ node (l4fleet nftables on eth0)
 *                                                  ══ backend 1..N (VIPs on lo, arp_ignore/announce)
 *
 * The router sends the VIP prefixes to the node; the node forwards each flow at L2 to a backend; the
 * backend answers from the VIP straight to the router (its default gateway), so replies never reach
 * the node: direct server return.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { createExec, setupBackend, teardownBackend, type VipTable } from '@l4fleet/dataplane';
import { type Flow, slotOf } from '@l4fleet/maglev';
import { createNetnsLab, type NetnsHost, type NetnsLab } from '@l4fleet/test-support/netns';

export const VIP4 = '198.51.100.77';
export const VIP6 = '2001:db8:77:9::1';
export const NODE4 = '198.18.72.2';
/** The node's IPv6 address on the backends' segment (the outer source of its IPv6 encapsulation). */
export const NODE6 = '2001:db8:77:2::2';
export const CLIENT4 = '198.18.71.2';
export const CLIENT6 = '2001:db8:77:1::2';
/** Extra client source addresses (for source-ip hashing), on the client's lo. */
export const clientSource4 = (i: number): string => `198.18.${76 + Math.floor(i / 250)}.${1 + (i % 250)}`;
export const clientSource6 = (i: number): string => `2001:db8:77:100::${(i + 1).toString(16)}`;
export const backend4 = (i: number): string => `198.18.72.${10 + i}`;
export const backend6 = (i: number): string => `2001:db8:77:2::${(10 + i).toString(16)}`;

export interface DsrTopology {
  readonly lab: NetnsLab;
  readonly client: NetnsHost;
  readonly router: NetnsHost;
  readonly node: NetnsHost;
  readonly backends: readonly NetnsHost[];
  cleanup(): Promise<void>;
}

export async function createDsrTopology(opts: { backends: number; extraSources?: number }): Promise<DsrTopology> {
  const lab = await createNetnsLab('l4dp');
  try {
    const client = await lab.host('cli');
    const router = await lab.host('rt');
    const node = await lab.host('node');
    const backends: NetnsHost[] = [];
    for (let i = 0; i < opts.backends; i++) backends.push(await lab.host(`b${i}`));

    await lab.veth(client, 'eth0', router, 'c0');
    await lab.veth(node, 'eth0', router, 'n0');
    for (const [i, b] of backends.entries()) await lab.veth(b, 'eth0', router, `b${i}`);
    await lab.bridge(router, 'br0', ['n0', ...backends.map((_b, i) => `b${i}`)]);

    await router.sh(
      [
        'sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1',
        'sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0',
        'ip addr add 198.18.71.1/24 dev c0 && ip addr add 2001:db8:77:1::1/64 dev c0 nodad',
        'ip addr add 198.18.72.1/24 dev br0 && ip addr add 2001:db8:77:2::1/64 dev br0 nodad',
        `ip route add 198.51.100.0/24 via ${NODE4} && ip -6 route add 2001:db8:77:9::/64 via 2001:db8:77:2::2`,
        `ip route add 198.18.76.0/22 via ${CLIENT4} && ip -6 route add 2001:db8:77:100::/64 via ${CLIENT6}`,
      ].join(' && '),
    );
    const sources = opts.extraSources ?? 0;
    const batch: string[] = [];
    for (let i = 0; i < sources; i++) {
      batch.push(`addr add ${clientSource4(i)}/32 dev lo`, `addr add ${clientSource6(i)}/128 dev lo nodad`);
    }
    await client.sh(
      [
        `ip addr add ${CLIENT4}/24 dev eth0 && ip addr add ${CLIENT6}/64 dev eth0 nodad`,
        'ip route add default via 198.18.71.1 && ip -6 route add default via 2001:db8:77:1::1',
        // A retransmitted SYN must keep its path (see platform-facts: txrehash).
        'sysctl -qw net.core.txrehash=0 || true',
      ].join(' && '),
    );
    if (batch.length > 0) await client.run(['ip', '-batch', '-'], { input: `${batch.join('\n')}\n` });
    await node.sh(
      `ip addr add ${NODE4}/24 dev eth0 && ip addr add 2001:db8:77:2::2/64 dev eth0 nodad && ` +
        'ip route add default via 198.18.72.1 && ip -6 route add default via 2001:db8:77:2::1',
    );
    for (const [i, b] of backends.entries()) {
      await b.sh(
        [
          'sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2',
          'sysctl -qw net.ipv4.conf.eth0.arp_ignore=1 net.ipv4.conf.eth0.arp_announce=2',
          'sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.eth0.rp_filter=0',
          `ip addr add ${backend4(i)}/24 dev eth0 && ip addr add ${backend6(i)}/64 dev eth0 nodad`,
          `ip addr add ${VIP4}/32 dev lo && ip addr add ${VIP6}/128 dev lo nodad`,
          'ip route add default via 198.18.72.1 && ip -6 route add default via 2001:db8:77:2::1',
        ].join(' && '),
      );
    }
    // Warm the node's neighbour entries for the backends (a datagram to each resolves ARP / ND), so the first
    // test packet is not an ARP race.
    await warmNeighbours(node, backends.length);
    return { lab, client, router, node, backends, cleanup: () => lab.cleanup() };
  } catch (err) {
    await lab.cleanup();
    throw err;
  }
}

/**
 * Installs a flow recorder in each backend: every packet to a VIP adds (saddr, l4proto, sport) to a set,
 * so a test can ask which backend saw which flow.
 */
export async function installFlowRecorders(backends: readonly NetnsHost[]): Promise<void> {
  const rules = `table inet rec {
  set seen4 { type ipv4_addr . inet_proto . inet_service; flags dynamic; size 65535; }
  set seen6 { type ipv6_addr . inet_proto . inet_service; flags dynamic; size 65535; }
  chain pre { type filter hook prerouting priority -300; policy accept;
    ip daddr ${VIP4} add @seen4 { ip saddr . meta l4proto . th sport }
    ip6 daddr ${VIP6} add @seen6 { ip6 saddr . meta l4proto . th sport }
  }
}
`;
  for (const b of backends) await b.run(['nft', '-f', '-'], { input: rules });
}

/** `src|proto|sport` keys of the flows each backend recorded. */
export async function recordedFlows(backend: NetnsHost): Promise<Set<string>> {
  const out = new Set<string>();
  for (const set of ['seen4', 'seen6']) {
    const r = await backend.run(['nft', '-j', 'list', 'set', 'inet', 'rec', set]);
    const objs = (JSON.parse(r.stdout) as { nftables: { set?: { elem?: unknown[] } }[] }).nftables;
    for (const o of objs) {
      for (const e of o.set?.elem ?? []) {
        const [src, proto, sport] = (e as { concat: [string, string, number] }).concat;
        out.add(`${src}|${proto}|${sport}`);
      }
    }
  }
  return out;
}

export async function clearRecorders(backends: readonly NetnsHost[]): Promise<void> {
  for (const b of backends) await b.run(['nft', 'flush set inet rec seen4; flush set inet rec seen6']);
}

/** Sends one packet per flow from the client: a TCP SYN (non-blocking connect) or a UDP datagram. */
export const SEND_FLOWS_PY = `
import json, socket, sys, time
flows = json.load(sys.stdin)
socks = []
for f in flows:
    fam = socket.AF_INET6 if ':' in f['dst'] else socket.AF_INET
    kind = socket.SOCK_STREAM if f['protocol'] == 'tcp' else socket.SOCK_DGRAM
    s = socket.socket(fam, kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((f['src'], f['sport']))
    s.setblocking(False)
    if kind == socket.SOCK_STREAM:
        s.connect_ex((f['dst'], f['dport']))
    else:
        s.sendto(b'x', (f['dst'], f['dport']))
    socks.append(s)
time.sleep(0.3)
for s in socks:
    s.close()
`;

/** A backend server: answers every line (TCP) or datagram (UDP) with its name, on both VIPs. */
export const NAME_SERVER_PY = `
import socket, sys, threading
name, port = sys.argv[1].encode() + b'\\n', int(sys.argv[2])
def serve(c):
    with c:
        for _line in c.makefile('rb'):
            c.sendall(name)
def tcp(fam, addr):
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port)); s.listen(256)
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()
def udp(fam, addr):
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.bind((addr, port))
    while True:
        _d, a = s.recvfrom(2048)
        s.sendto(name, a)
for fam, addr in ((socket.AF_INET, '${VIP4}'), (socket.AF_INET6, '${VIP6}')):
    for fn in (tcp, udp):
        threading.Thread(target=fn, args=(fam, addr), daemon=True).start()
print('ready', flush=True)
threading.Event().wait()
`;

/**
 * A client holding one TCP connection: each stdin line is sent, each reply line printed. With a fifth argument
 * `finish`, the end of stdin closes the connection as a peer does: its FIN, then the server's FIN read (at most 10 s).
 */
export const LINE_CLIENT_PY = `
import socket, sys
src, sport, dst, dport = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
fam = socket.AF_INET6 if ':' in dst else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((src, sport)); s.settimeout(5); s.connect((dst, dport))
f = s.makefile('rb')
for line in sys.stdin:
    s.sendall(b'x\\n')
    print(f.readline().decode().strip(), flush=True)
if sys.argv[5:] == ['finish']:
    s.settimeout(10)
    s.shutdown(socket.SHUT_WR)
    while s.recv(4096):
        pass
`;

/** Sends a datagram from `node` to each of `n` backends (both families) and waits for ARP / ND to answer. */
export async function warmNeighbours(node: NetnsHost, n: number): Promise<void> {
  const addresses = Array.from({ length: n }, (_x, i) => [backend4(i), backend6(i)]).flat();
  await node.run([
    'python3',
    '-c',
    `import socket, time
for a in ${JSON.stringify(addresses)}:
    s = socket.socket(socket.AF_INET6 if ':' in a else socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b'x', (a, 9))
time.sleep(0.5)`,
  ]);
}

/**
 * A long-lived TCP connection from `client`; ask() sends a line and returns the answering backend's name, or
 * `closed` when the connection died (reset), or `timeout` after `askTimeoutMs`. close() kills the client: its
 * kernel closes the connection after it, unawaited. finish() closes it as a peer does and resolves once the client
 * has read the server's FIN (or was gone already; killed after `timeoutMs`): the exchange is over but for the
 * client's last ACK, which has left it (sendingSockets tells when it arrived).
 */
export function lineClient(
  client: NetnsHost,
  src: string,
  sport: number,
  dst: string,
  dport: number,
  askTimeoutMs = 5000,
) {
  const child = spawn('ip', [
    'netns',
    'exec',
    client.ns,
    'python3',
    '-c',
    LINE_CLIENT_PY,
    src,
    String(sport),
    dst,
    String(dport),
    'finish',
  ]);
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  return {
    async ask(): Promise<string> {
      child.stdin.write('x\n');
      const next = await Promise.race([
        lines.next(),
        new Promise<{ done: true; value: 'timeout' }>((r) =>
          setTimeout(() => r({ done: true, value: 'timeout' }), askTimeoutMs),
        ),
      ]);
      return next.done ? (next.value === 'timeout' ? 'timeout' : 'closed') : String(next.value);
    },
    close: () => child.kill(),
    async finish(timeoutMs = 15_000): Promise<void> {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.stdin.once('error', () => undefined); // EPIPE: the client died (reset) before its exit was seen
      child.stdin.end();
      let timer: NodeJS.Timeout | undefined;
      const inTime = await Promise.race([
        exited.then(() => true),
        new Promise<boolean>((r) => {
          timer = setTimeout(() => r(false), timeoutMs);
        }),
      ]).finally(() => clearTimeout(timer));
      if (!inTime) {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}

/** TCP states whose socket sends again on its own until answered: a SYN or a FIN not yet acknowledged. */
const UNANSWERED_STATES = new Set(['SYN-SENT', 'SYN-RECV', 'FIN-WAIT-1', 'CLOSING', 'LAST-ACK']);

/**
 * The TCP sockets from or to `port` in `hosts` that will retransmit (`ss` lines, each after its namespace): a SYN
 * (request sockets included) or a FIN not yet acknowledged, or data not yet acknowledged (Send-Q above 0). Left at
 * the end of a test, they retransmit for up to minutes (RFC 6298 backoff) into whatever a later test set up.
 */
export async function sendingSockets(hosts: readonly NetnsHost[], port: number): Promise<string[]> {
  const out: string[] = [];
  for (const h of hosts) {
    // 2 s: the caller polls within a deadline, and one ss hung on a loaded machine must not outlast it.
    const r = await h.run(['ss', '-Htan', `( sport = :${port} or dport = :${port} )`], { timeoutMs: 2_000 });
    for (const line of r.stdout.split('\n').map((l) => l.trim())) {
      const [state = '', , sendQ = '0'] = line.split(/\s+/);
      const unacked = (state === 'ESTAB' || state === 'CLOSE-WAIT') && Number(sendQ) > 0;
      if (UNANSWERED_STATES.has(state) || unacked) out.push(`${h.ns}: ${line}`);
    }
  }
  return out;
}

/** sendingSockets, polled every 100 ms until there are none or `timeoutMs` passed: what is left then. */
export async function quietSockets(hosts: readonly NetnsHost[], port: number, timeoutMs = 10_000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  let left = await sendingSockets(hosts, port);
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    left = await sendingSockets(hosts, port);
  }
  return left;
}

/** NAME_SERVER_PY on every backend at `port`; resolves once all listen, with a function that stops them. */
export async function nameServers(backends: readonly NetnsHost[], port: number): Promise<() => void> {
  const servers = backends.map((b, i) => b.spawn(['python3', '-c', NAME_SERVER_PY, `b${i}`, String(port)]));
  await Promise.all(servers.map((x) => new Promise((r) => x.stdout?.once('data', r))));
  return () => {
    for (const x of servers) x.kill('SIGKILL');
  };
}

/** The backend index the VIP's table gives `f` (@l4fleet/maglev slotOf: what every node must pick). */
export const expectedBackend = (t: VipTable, f: Flow): number =>
  t.slots[slotOf(f, t.slots.length, t.seed, t.hash)] as number;

/** A flow as the backends' recorders key it. */
export const flowKey = (f: Flow): string => `${f.src}|${f.protocol}|${f.sport}`;

/**
 * One packet per flow from the topology's client (SEND_FLOWS_PY). `flushNodeNeighbours` empties the node's neighbour
 * tables in the same process right before the packets leave: flushed from a separate process, a neighbour entry can come
 * back in between under load (a backend's ARP or ND creates one), and the packets no longer meet an unknown neighbour.
 */
export async function sendFlows(
  topo: DsrTopology,
  flows: readonly Flow[],
  opts: { flushNodeNeighbours?: boolean } = {},
): Promise<void> {
  const input = JSON.stringify(flows);
  if (!opts.flushNodeNeighbours) {
    await topo.client.run(['python3', '-c', SEND_FLOWS_PY], { input, timeoutMs: 30_000 });
    return;
  }
  const ns = topo.node.ns;
  const flush = `ip -n ${ns} neigh flush dev eth0 && ip -n ${ns} -6 neigh flush dev eth0`;
  await topo.client.run(['sh', '-c', `${flush} && exec python3 -c "$1"`, 'send-flows', SEND_FLOWS_PY], {
    input,
    timeoutMs: 30_000,
  });
}

/** Which backend recorded each flow (`src|proto|sport` -> backend indices). */
export async function landings(topo: DsrTopology): Promise<Map<string, number[]>> {
  const out = new Map<string, number[]>();
  for (const [i, b] of topo.backends.entries()) {
    for (const k of await recordedFlows(b)) out.set(k, [...(out.get(k) ?? []), i]);
  }
  return out;
}

/**
 * `l4fleet backend setup` on every backend (gue, ipip and gre for both VIPs, from `nodes`), each backend its own host:
 * its own bpffs (`<bpffsBase>-b<i>`, mounted here) and state directory. Returns what undoes it all.
 */
export async function decapsulatingBackends(
  topo: DsrTopology,
  bpffsBase: string,
  nodes: readonly string[],
): Promise<() => Promise<void>> {
  const deps = topo.backends.map((b, i) => ({
    exec: createExec(b.ns),
    bpffs: `${bpffsBase}-b${i}`,
    stateDir: `${bpffsBase}-state-${b.ns}`,
  }));
  const undo = async (): Promise<void> => {
    for (const d of deps) await teardownBackend(d).catch(() => undefined);
    for (const d of deps) {
      rmSync(d.stateDir, { recursive: true, force: true });
      spawnSync('umount', [d.bpffs]);
      rmSync(d.bpffs, { recursive: true, force: true });
    }
  };
  try {
    for (const d of deps) {
      mkdirSync(d.bpffs, { recursive: true });
      spawnSync('mount', ['-t', 'bpf', 'bpf', d.bpffs]);
      await setupBackend(
        { vips: [VIP4, VIP6], forwarding: ['gue', 'ipip', 'gre'], nodes: [...nodes], interface: 'eth0' },
        d,
      );
    }
  } catch (err) {
    await undo();
    throw err;
  }
  return undo;
}

/**
 * `ping` from `host` to `target` (`count` requests 0.2 s apart, at most 4 s): the lines of replies that came from
 * `target` itself. `size`: the data bytes (above the MTU, the request goes in fragments).
 */
export async function pingReplies(
  host: NetnsHost,
  target: string,
  opts: { count: number; size?: number },
): Promise<string[]> {
  const r = await host.run(
    ['ping', '-n', '-c', String(opts.count), '-i', '0.2', '-W', '1', '-w', '4', '-s', String(opts.size ?? 56), target],
    { allowFailure: true, timeoutMs: 10_000 },
  );
  return r.stdout.split('\n').filter((l) => l.includes(`bytes from ${target}: icmp_seq=`));
}
