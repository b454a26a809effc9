/**
 * Second chance in the data-plane bench (docs/design/0011-second-chance.md): what naming the previous owner
 * costs per packet, by the kernel's own run time of each program (kernel.bpf_stats_enabled=1, run_time_ns /
 * run_cnt: the cross-check method of bpf.ts), on the namespace topology of test/dataplane (client, router,
 * a bpf node with forwarding gue, two backends set up with `l4fleet backend setup --peers`).
 *
 * The traffic is bare TCP ACKs from the client (a raw socket, 16 flows, so the node's flow LRU hits after the
 * first packet of each), `SC_PACKETS` per measurement, IPv4:
 *   node      gue without a previous owner vs with one named (+12 bytes of GUE header and private data);
 *   backend   the backend program on b1 (the slot's owner) for: a plain gue TCP packet (no previous owner: no
 *             socket lookup), one naming b0 for a flow b1 has a socket for (bpf_skc_lookup_tcp hit: decapsulated),
 *             and one b1 has no socket for (lookup miss: rewritten and sent on to b0, bpf_redirect_neigh).
 * Run alone: `npx tsx bench/second-chance.ts` (root; under flock /tmp/l4fleet-lab.lock).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { pino } from 'pino';
import type { NetnsHost } from '../../../test/support/netns.js';
import {
  type BackendHostDeps,
  backendStatus,
  createBpfDataPlane,
  createExec,
  setupBackend,
  teardownBackend,
  type VipTable,
} from '../src/index.js';
import { benchLab, setSysctl } from './interrupt.js';
import { checkSecondChancePaths } from './second-chance-check.js';

// Lab addresses (198.18.0.0/15, 198.51.100.0/24), distinct from the other bench topologies.
const VIP4 = '198.51.100.91';
const NODE4 = '198.18.92.2';
const CLIENT4 = '198.18.91.2';
const backend4 = (i: number): string => `198.18.92.${10 + i}`;

/** client - router - br0 { node, b0, b1 }: the router sends the VIP to the node; backends answer directly. */
async function topology() {
  const lab = await benchLab('l4sc');
  try {
    const client = await lab.host('cli');
    const router = await lab.host('rt');
    const node = await lab.host('node');
    const backends: NetnsHost[] = [await lab.host('b0'), await lab.host('b1')];
    await lab.veth(client, 'eth0', router, 'c0');
    await lab.veth(node, 'eth0', router, 'n0');
    for (const [i, b] of backends.entries()) await lab.veth(b, 'eth0', router, `b${i}`);
    await lab.bridge(router, 'br0', ['n0', 'b0', 'b1']);
    await router.sh(
      'sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 && ' +
        'ip addr add 198.18.91.1/24 dev c0 && ip addr add 198.18.92.1/24 dev br0 && ' +
        `ip route add ${VIP4}/32 via ${NODE4}`,
    );
    await client.sh(`ip addr add ${CLIENT4}/24 dev eth0 && ip route add default via 198.18.91.1`);
    await node.sh(`ip addr add ${NODE4}/24 dev eth0 && ip route add default via 198.18.92.1`);
    for (const [i, b] of backends.entries()) {
      await b.sh(
        `ip addr add ${backend4(i)}/24 dev eth0 && ip route add default via 198.18.92.1 && ` +
          'sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.eth0.rp_filter=0',
      );
      await node.run(['ping', '-c1', '-W1', backend4(i)], { allowFailure: true });
    }
    await backends[0]?.run(['ping', '-c1', '-W1', backend4(1)], { allowFailure: true });
    return { client, node, backends, cleanup: () => lab.cleanup() };
  } catch (err) {
    await lab.cleanup();
    throw err;
  }
}

const SC_PACKETS = Number(process.env.BENCH_SC_PACKETS ?? 20_000);
const PORT = 1600;
const SIZE = 251;
const BPFFS = `/run/l4fleet-bench-sc-${process.pid}`;
const logger = pino({ level: 'silent' });

/** `count` bare ACKs over 16 flows (client ports 50000-50015) to the VIP, from a raw socket. */
const ACKS_PY = `
import socket, struct, sys
count, sport0 = int(sys.argv[1]), int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
pkts = [struct.pack('!HHIIBBHHH', sport0 + i, ${PORT}, 1, 1, 5 << 4, 0x10, 1024, 0, 0) for i in range(16)]
for i in range(count):
    s.sendto(pkts[i & 15], ('${VIP4}', 0))
`;

function table(owner: 0 | 1, previous?: 0 | 1): VipTable {
  const backends = [0, 1].map((i) => ({ name: `b${i}`, address: backend4(i), port: PORT }));
  return {
    vip: { address: VIP4, port: PORT, protocol: 'tcp' },
    hash: '5-tuple',
    seed: 7,
    backends,
    slots: new Int32Array(SIZE).fill(owner),
    ...(previous === undefined ? {} : { previousSlots: new Int32Array(SIZE).fill(previous) }),
    forwarding: 'gue',
  };
}

/** run_time_ns and run_cnt of a program (bpftool prog show). */
function progStats(args: string[]): { ns: number; cnt: number } {
  const r = spawnSync('bpftool', ['-j', 'prog', 'show', ...args], { encoding: 'utf8' });
  const p = JSON.parse(r.stdout) as { run_time_ns?: number; run_cnt?: number };
  return { ns: p.run_time_ns ?? 0, cnt: p.run_cnt ?? 0 };
}

export async function measureSecondChance(): Promise<Record<string, number>> {
  const topo = await topology();
  const hosts: BackendHostDeps[] = topo.backends.map((b, i) => ({
    exec: createExec(b.ns),
    bpffs: `${BPFFS}-b${i}`,
    stateDir: `${BPFFS}-state-b${i}`,
  }));
  let restoreStats: (() => void) | undefined;
  const dp = createBpfDataPlane({
    interface: 'eth0',
    netns: topo.node.ns,
    nodeAddresses: [NODE4],
    bpffsPath: BPFFS,
    pinName: 'sc',
    logger,
  });
  const figures: Record<string, number> = {};
  let server: ReturnType<NetnsHost['spawn']> | undefined;
  try {
    for (const dir of [BPFFS, ...hosts.map((h) => h.bpffs as string)]) {
      mkdirSync(dir, { recursive: true });
      spawnSync('mount', ['-t', 'bpf', 'bpf', dir]);
    }
    for (const [i, h] of hosts.entries()) {
      await setupBackend(
        {
          vips: [VIP4],
          forwarding: ['gue'],
          nodes: [NODE4],
          peers: [backend4(1 - i)],
          interface: 'eth0',
        },
        h,
      );
    }
    // A server on b1 and one established connection from the client, for the lookup-hit case.
    server = topo.backends[1]?.spawn([
      'python3',
      '-c',
      `import socket,time\ns=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('${VIP4}',${PORT}));s.listen(64)\nprint('ready',flush=True)\ncs=[s.accept()[0] for _ in range(16)]\ntime.sleep(600)`,
    ]);
    restoreStats = setSysctl('kernel.bpf_stats_enabled', '1');
    await new Promise((r) => server?.stdout?.once('data', r));
    const b1 = `${hosts[1]?.bpffs}`;
    const b1Prog = (): { ns: number; cnt: number } => {
      const ls = spawnSync('ls', [`${b1}/l4fleet-backend`], { encoding: 'utf8' })
        .stdout.trim()
        .split('\n')[0];
      return progStats(['pinned', `${b1}/l4fleet-backend/${ls}/prog`]);
    };
    const send = async (sport0: number): Promise<void> => {
      await topo.client.run(['python3', '-c', ACKS_PY, String(SC_PACKETS), String(sport0)], { timeoutMs: 120_000 });
    };
    /** ns per run of the node program and of b1's backend program during one flood. */
    const flood = async (sport0: number): Promise<{ node: number; backend: number }> => {
      const n0 = await dp.programStats();
      const b0 = b1Prog();
      await send(sport0);
      const n1 = await dp.programStats();
      const bb = b1Prog();
      const per = (a: { ns: number; cnt: number }, b: { ns: number; cnt: number }) =>
        b.cnt > a.cnt ? (b.ns - a.ns) / (b.cnt - a.cnt) : Number.NaN;
      return {
        node: per({ ns: n0.runTimeNs, cnt: n0.runCount }, { ns: n1.runTimeNs, cnt: n1.runCount }),
        backend: per(b0, bb),
      };
    };
    // 16 established connections to b1 from client ports 51000-51015 (the lookup-hit flows).
    await dp.apply([table(1)]);
    await topo.client.run(
      [
        'python3',
        '-c',
        `import socket,time\ncs=[]\nfor i in range(16):\n  c=socket.socket();c.bind(('${CLIENT4}',51000+i));c.connect(('${VIP4}',${PORT}));cs.append(c)\nprint('ok',flush=True)\ntime.sleep(1)`,
      ],
      { timeoutMs: 30_000 },
    );
    // Plain gue, no previous owner: the node writes 28 bytes, the backend only decapsulates.
    const plain = await flood(50_000);
    // Previous owner named; flows without a socket on b1: the backend looks up, misses, forwards to b0.
    await dp.apply([table(1, 0)]);
    await dp.clearFlows();
    const missed = await flood(50_000);
    // Previous owner named; b1 has the socket (the connections above are gone from the client, but the ACKs to
    // their 4-tuples still find b1's sockets until they time out): lookup hit, decapsulated.
    const hit = await flood(51_000);
    figures.scNodePlainNs = plain.node;
    figures.scNodeTaggedNs = missed.node;
    figures.scBackendPlainNs = plain.backend;
    figures.scBackendHitNs = hit.backend;
    figures.scBackendForwardNs = missed.backend;
    figures.scPackets = SC_PACKETS;
    // What b1 did with them (so a figure is not of the wrong path): forwarded = the miss flood, local = the hit one.
    const sc = (await backendStatus(hosts[1] as BackendHostDeps)).counters.secondChance;
    figures.scForwarded = sc.forwarded.packets;
    figures.scLocal = sc.local.packets;
    checkSecondChancePaths(figures);
  } finally {
    server?.kill('SIGKILL');
    restoreStats?.();
    await dp.close({ removeState: true }).catch(() => undefined);
    for (const h of hosts) await teardownBackend(h).catch(() => undefined);
    await topo.cleanup();
    for (const dir of [BPFFS, ...hosts.map((h) => h.bpffs as string)]) {
      spawnSync('umount', [dir]);
      rmSync(dir, { recursive: true, force: true });
    }
    for (const h of hosts) rmSync(h.stateDir as string, { recursive: true, force: true });
  }
  return figures;
}

export function secondChanceReport(f: Record<string, number>): string[] {
  const ns = (k: string) => `${Math.round(f[k] ?? Number.NaN)} ns`;
  return [
    `second chance (bpf_stats run time per packet, ${f.scPackets} TCP ACKs over 16 flows, IPv4, gue):`,
    `  node:    plain ${ns('scNodePlainNs')}, previous owner named ${ns('scNodeTaggedNs')}`,
    `  backend: plain decap ${ns('scBackendPlainNs')}, named + socket here ${ns('scBackendHitNs')}, ` +
      `named + no socket (sent on) ${ns('scBackendForwardNs')}`,
    `  (b1 forwarded ${f.scForwarded}, decapsulated with its socket ${f.scLocal})`,
  ];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const f = await measureSecondChance();
  console.log(secondChanceReport(f).join('\n'));
}
