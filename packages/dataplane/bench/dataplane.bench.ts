/**
 * Data-plane bench (root; network namespaces): throughput (iperf3) and new connections per second from
 * a client through one node (paths.ts: direct, nftables l2 and nat, HAProxy in TCP mode, the proxy driver,
 * the bpf driver with l2 / gue / ipip, and the bare hop through the node); the per-packet CPU cost of the nftables chain and of the bpf program, IPv4
 * and IPv6, for known flows and for a flow's first packet (per-packet.ts, bpf.ts); then apply latency at
 * M = 65,537 of both drivers. One run; prints tables and a JSON line. Everything it creates (namespaces,
 * processes, pins, bpffs mounts) is removed at the end, after a failure, and on SIGINT/SIGTERM.
 *
 *   client -- router == br0 == node, backend       (veths; the backend holds the VIP on lo)
 *   The router's client-side veth sits alone in a bridge (brc), so the per-packet bench can give the client's
 *   frames a NIC's headroom (headroom.ts).
 *   The node segment (br0, node, backend) has MTU 1600, so a 1500-byte packet fits after GUE (+28) or
 *   IPIP (+20): the underlay MTU a fleet with encapsulation needs (docs/design/0007). Client side 1500.
 *   IPv4 198.18.171.0/24 client side, 198.18.172.0/24 node segment, VIP in 198.51.100.0/24;
 *   IPv6 2001:db8:171::/64, 2001:db8:172::/64, VIP in 2001:db8:100::/64 (per-packet IPv6 flood only).
 *   New-flow floods send from 198.18.176.0/20 and 2001:db8:176::/64, routed to the client.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildTable } from '@l4fleet/maglev';
import { pino } from 'pino';
import type { NetnsHost } from '../../../test/support/netns.js';
import { createNftablesDataPlane, type DataPlane, type VipTable } from '../src/index.js';
import { measureBpfPerPacket } from './bpf.js';
import { bpfApplyLatency } from './bpf-apply.js';
import { bpfReport } from './bpf-report.js';
import { BENCH_FLOW_TABLE_SIZE, BENCH_FLOW_TIMEOUT_UDP_S, floodVip, NEW_FLOW_SOURCE_PREFIXES } from './flood.js';
import { clientBridge } from './headroom.js';
import { benchLab } from './interrupt.js';
import { machine, machineLine, safeRet } from './machine.js';
import { nftApplyLatency } from './nft-apply.js';
import {
  buildConnRate,
  CPS_PORT,
  CPS_S,
  CPS_WORKERS,
  createPathRunner,
  IPERF_PORT,
  IPERF_S,
  measureBpfPaths,
  PATHS_ROUNDS,
  type PathRunner,
  pathSelected,
  pathsReport,
  ready,
} from './paths.js';
import { measurePerPacket } from './per-packet.js';
import { perPacketReport } from './per-packet-report.js';
import { measureSecondChance, secondChanceReport } from './second-chance.js';
import { vsHaproxy, vsHaproxyLine } from './vs-haproxy.js';

const VIP = '198.51.100.201';
/** The NAT path's VIP (forwarding: nat, design note 0012): its ports are the members' plus NAT_PORT_OFFSET. */
const NAT_VIP = '198.51.100.202';
const NAT_PORT_OFFSET = 10;
const NODE = '198.18.172.2';
const BACKEND = '198.18.172.10';
// IPv6 (the per-packet IPv6 flood): the same segments, numbered alike, in 2001:db8::/32 (RFC 3849).
const VIP6 = '2001:db8:100::201';
const NODE6 = '2001:db8:172::2';
const BACKEND6 = '2001:db8:172::10';
const logger = pino({ level: 'silent' });
/** BENCH_ONLY=bpf runs only the bpf driver's part (per-packet and apply), for working on it. */
const ONLY_BPF = process.env.BENCH_ONLY === 'bpf';
/** The nftables driver's delta target (an earlier issue): a pool change of up to half the slots within this. */
const NFT_DELTA_TARGET_MS = 50;
/**
 * BENCH_SKIP=paths (the throughput and connections/s table, every path), per-packet, apply (the bpf driver's),
 * nft-per-packet, nft-apply, second-chance: any of them leaves those figures out (a shorter run; on a loaded machine `nft list map` of the nft per-packet part can
 * time out). BENCH_ONLY=paths runs only the throughput and connections/s table (BENCH_PATHS in paths.ts picks
 * paths in it).
 */
const SKIP = new Set([
  ...(process.env.BENCH_SKIP ?? '').split(',').filter(Boolean),
  ...(process.env.BENCH_ONLY === 'paths'
    ? ['per-packet', 'apply', 'nft-per-packet', 'nft-apply', 'second-chance']
    : []),
]);

/**
 * The nftables driver in `nat` mode beside the l2 VIPs (as test/dataplane/nat.int.test.ts runs it): forwarding
 * on in the node's namespace for the measurement only, the NAT VIP removed again before the per-packet part so
 * that part measures the l2 chain alone.
 */
async function measureNat(s: {
  dp: DataPlane;
  l2Tables: VipTable[];
  node: NetnsHost;
  runner: PathRunner;
}): Promise<void> {
  if (!pathSelected('nftables-nat')) return;
  const nat = [IPERF_PORT, CPS_PORT].map((port): VipTable => {
    const backends = [{ name: 'be', address: BACKEND, port }];
    return {
      vip: { address: NAT_VIP, port: port + NAT_PORT_OFFSET, protocol: 'tcp' },
      hash: '5-tuple',
      seed: 7,
      backends,
      slots: buildTable(backends),
      forwarding: 'nat',
    };
  });
  const before = (await s.node.sh('sysctl -n net.ipv4.ip_forward')).trim();
  await s.node.sh('sysctl -qw net.ipv4.ip_forward=1');
  try {
    await s.dp.apply([...s.l2Tables, ...nat]);
    await s.runner.measure('nftables-nat', {
      host: NAT_VIP,
      ports: { iperf: IPERF_PORT + NAT_PORT_OFFSET, cps: CPS_PORT + NAT_PORT_OFFSET },
    });
  } finally {
    await s.dp.apply(s.l2Tables);
    await s.node.sh(`conntrack -F 2>/dev/null; sysctl -qw net.ipv4.ip_forward=${before}`);
  }
}

/**
 * The hop through the node alone (`node-fwd`): a bare netdev `fwd` of the VIP's TCP ports to the backend, no
 * l4fleet. Every path through the node pays this hop (two more veths and the router's bridge twice) and direct
 * does not, so its ratio says how much of a data plane's distance to direct is the topology's (2026-12-07: on the
 * Intel model-207 kind, with direct at ~52 Gbit/s, the hop alone took ~10%).
 */
async function measureNodeHop(node: NetnsHost, runner: PathRunner): Promise<void> {
  const table = 'l4bench_hop';
  await node.run(['nft', '-f', '-'], {
    input:
      `table netdev ${table} {\n  chain in {\n    type filter hook ingress device "eth0" priority -100; policy accept;\n` +
      `    meta pkttype host ip daddr ${VIP} tcp dport { ${IPERF_PORT}, ${CPS_PORT} } fwd ip to ${BACKEND} device "eth0"\n  }\n}\n`,
  });
  try {
    await runner.measure('node-fwd', { host: VIP });
  } finally {
    await node.run(['nft', 'delete', 'table', 'netdev', table], { allowFailure: true });
  }
}

async function main(): Promise<void> {
  const lab = await benchLab('l4bn');
  // The machine's load when the run started and ended: on 2 shared cores every figure moves with it.
  const host = machine();
  console.log(machineLine(host));
  const figures: Record<string, number> = {
    loadAverageStart: loadavg()[0] as number,
    cpus: host.cpus,
    safeRet: safeRet(host) ? 1 : 0,
  };
  let pathsError: unknown;
  const dir = mkdtempSync(join(tmpdir(), 'l4bn-'));
  try {
    const client = await lab.host('cli');
    const router = await lab.host('rt');
    const node = await lab.host('node');
    const backend = await lab.host('be');
    await lab.veth(client, 'eth0', router, 'c0');
    await lab.veth(node, 'eth0', router, 'n0');
    await lab.veth(backend, 'eth0', router, 'b0');
    await lab.bridge(router, 'br0', ['n0', 'b0']);
    await clientBridge(router, 'c0', '198.18.171.1'); // NIC-like headroom on demand (headroom.ts)
    await router.sh('ip link set n0 mtu 1600 && ip link set b0 mtu 1600 && ip link set br0 mtu 1600');
    await node.sh('ip link set eth0 mtu 1600');
    await backend.sh('ip link set eth0 mtu 1600');
    await router.sh(
      'sysctl -qw net.ipv4.ip_forward=1 && ip addr add 198.18.171.1/24 dev brc && ip addr add 198.18.172.1/24 dev br0 && ' +
        `ip route add 198.51.100.0/24 via ${NODE}`,
    );
    await client.sh('ip addr add 198.18.171.2/24 dev eth0 && ip route add default via 198.18.171.1');
    await node.sh(`ip addr add ${NODE}/24 dev eth0 && ip route add default via 198.18.172.1`);
    await backend.sh(
      'sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 && ' +
        `ip addr add ${BACKEND}/24 dev eth0 && ip addr add ${VIP}/32 dev lo && ip route add default via 198.18.172.1`,
    );
    // IPv6 for the per-packet IPv6 flood (nodad: usable at once). The backend answers ND only for
    // addresses on the interface asked, so the VIP on lo needs no arp_ignore counterpart.
    await router.sh(
      'sysctl -qw net.ipv6.conf.all.forwarding=1 && ip -6 addr add 2001:db8:171::1/64 dev brc nodad && ' +
        `ip -6 addr add 2001:db8:172::1/64 dev br0 nodad && ip -6 route add 2001:db8:100::/64 via ${NODE6}`,
    );
    await client.sh('ip -6 addr add 2001:db8:171::2/64 dev eth0 nodad && ip -6 route add default via 2001:db8:171::1');
    // The per-packet new-flow floods' source addresses (not on the client: it sends with IP_TRANSPARENT),
    // routed back to it so the router's reverse-path check, if on, passes them.
    await router.sh(
      `ip route add ${NEW_FLOW_SOURCE_PREFIXES[4]} via 198.18.171.2 && ` +
        `ip -6 route add ${NEW_FLOW_SOURCE_PREFIXES[6]} via 2001:db8:171::2`,
    );
    await node.sh(`ip -6 addr add ${NODE6}/64 dev eth0 nodad && ip -6 route add default via 2001:db8:172::1`);
    await backend.sh(
      `ip -6 addr add ${BACKEND6}/64 dev eth0 nodad && ip -6 addr add ${VIP6}/128 dev lo && ` +
        'ip -6 route add default via 2001:db8:172::1',
    );
    await node.run(['ping', '-c1', '-W1', BACKEND], { allowFailure: true });
    await node.run(['ping', '-6', '-c1', '-W1', BACKEND6], { allowFailure: true });
    const connRate = await buildConnRate(dir);
    await ready(backend, ['iperf3', '-s', '-p', String(IPERF_PORT), '--forceflush']);
    await ready(backend, [connRate, 'server', String(CPS_PORT), String(CPS_WORKERS)]);

    // nftables driver on the node; flow maps large enough for one per-packet new-flow flood, and UDP
    // entries that outlive its count (see per-packet.ts).
    const dp = createNftablesDataPlane({
      interface: 'eth0',
      netns: node.ns,
      logger,
      flowTableSize: BENCH_FLOW_TABLE_SIZE,
      flowTimeoutUdpS: BENCH_FLOW_TIMEOUT_UDP_S,
    });
    const be = [{ name: 'be', address: BACKEND, port: 5201 }];
    const be2 = [{ name: 'be', address: BACKEND, port: 5301 }];
    const l2Tables: VipTable[] = [
      {
        vip: { address: VIP, port: 5201, protocol: 'tcp' },
        hash: '5-tuple',
        seed: 7,
        backends: be,
        slots: buildTable(be),
      },
      {
        vip: { address: VIP, port: 5301, protocol: 'tcp' },
        hash: '5-tuple',
        seed: 7,
        backends: be2,
        slots: buildTable(be2),
      },
      floodVip(VIP, BACKEND),
      floodVip(VIP6, BACKEND6),
    ];
    await dp.apply(l2Tables);
    // HAProxy (TCP mode) and the proxy driver, on the node's own address.
    writeFileSync(
      join(dir, 'haproxy.cfg'),
      'global\n  maxconn 4096\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n' +
        `listen t\n  bind ${NODE}:5202\n  server s ${BACKEND}:5201\nlisten c\n  bind ${NODE}:5302\n  server s ${BACKEND}:5301\n`,
    );
    const haproxy = node.spawn(['haproxy', '-f', join(dir, 'haproxy.cfg'), '-db']);
    const dist = fileURLToPath(new URL('../dist/index.js', import.meta.url));
    const maglev = fileURLToPath(new URL('../../maglev/dist/index.js', import.meta.url));
    const runner = `
      import { createProxyDataPlane } from '${dist}';
      import { buildTable } from '${maglev}';
      import { pino } from 'pino';
      const dp = createProxyDataPlane({ logger: pino({ level: 'silent' }) });
      const t = (port, bport) => { const b = [{ name: 'be', address: '${BACKEND}', port: bport }];
        return { vip: { address: '${NODE}', port, protocol: 'tcp' }, hash: '5-tuple', seed: 7, backends: b, slots: buildTable(b) }; };
      await dp.apply([t(5203, 5201), t(5303, 5301)]);
      console.log('ready');`;
    writeFileSync(join(dir, 'proxy.mjs'), runner);
    await ready(node, ['node', '--input-type=module', '-e', runner]);
    await new Promise((r) => setTimeout(r, 300));

    // Every path in paired rounds with direct (paths.ts, PathRunner).
    const paths = createPathRunner({ client, connRate, direct: BACKEND });
    if (!ONLY_BPF && !SKIP.has('paths')) {
      await paths.measure('nftables', { host: VIP });
      await measureNat({ dp, l2Tables, node, runner: paths });
      await paths.measure('haproxy', { host: NODE, ports: { iperf: 5202, cps: 5302 } });
      await paths.measure('proxy', { host: NODE, ports: { iperf: 5203, cps: 5303 } });
    }
    if (!ONLY_BPF && !SKIP.has('nft-per-packet'))
      Object.assign(
        figures,
        await measurePerPacket({
          client,
          node,
          backend,
          dp,
          vip: VIP,
          backendAddress: BACKEND,
          vip6: VIP6,
          backendAddress6: BACKEND6,
          dir,
        }),
      );
    await dp.close({ removeState: true });
    haproxy.kill('SIGKILL');
    if (!SKIP.has('paths') && pathSelected('node-fwd')) await measureNodeHop(node, paths);
    // The bpf driver on the same node and path, after nftables is gone from it.
    // A failure of the bpf paths (a backend host that cannot be set up, say) keeps the other figures.
    if (!SKIP.has('paths')) {
      try {
        Object.assign(
          figures,
          await measureBpfPaths({
            runner: paths,
            node,
            backend,
            vip: VIP,
            nodeAddress: NODE,
            backendAddress: BACKEND,
            dir,
          }),
        );
      } catch (err) {
        pathsError = err;
      }
    }
    Object.assign(figures, paths.figures());
    Object.assign(figures, vsHaproxy(figures));
    if (!SKIP.has('per-packet'))
      Object.assign(
        figures,
        await measureBpfPerPacket({
          client,
          router,
          node,
          backend,
          vip: VIP,
          vip6: VIP6,
          backendAddress: BACKEND,
          backendAddress6: BACKEND6,
          nodeAddresses: [NODE, NODE6],
          clientAddresses: { 4: '198.18.171.2', 6: '2001:db8:171::2' },
          dir,
        }),
      );
  } finally {
    await lab.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
  // A failure here must not lose the figures measured above: print them, then the error, and exit 1.
  let applyError: unknown;
  try {
    if (!ONLY_BPF && !SKIP.has('nft-apply')) Object.assign(figures, await nftApplyLatency('netlink'));
    if (!ONLY_BPF && !SKIP.has('nft-apply')) Object.assign(figures, await nftApplyLatency('nft'));
    if (!SKIP.has('apply')) Object.assign(figures, await bpfApplyLatency());
    if (!SKIP.has('second-chance')) Object.assign(figures, await measureSecondChance());
  } catch (e) {
    applyError = e;
  }

  if (figures.directGbps !== undefined) {
    console.log(
      `\nthroughput (iperf3, ${IPERF_S} s) and new TCP connections/s (conn-rate, ${CPS_S} s) through one node; ` +
        `per path ${PATHS_ROUNDS} rounds paired with direct: median, [min..max] of the rounds' ratios, 1-min load average`,
    );
    console.log(pathsReport(figures).join('\n'));
    const vs = vsHaproxyLine(figures);
    if (vs !== undefined) console.log(vs);
  }
  if (applyError === undefined && !ONLY_BPF && !SKIP.has('nft-apply')) {
    const f = (k: string, w: string, digits = 1): string => (figures[`${k}_${w}`] as number).toFixed(digits);
    console.log(
      `\napply at M = 65,537 (median of 5)      ${'netlink'.padStart(9)}${'nft -f'.padStart(9)}   x faster\n` +
        [
          ['full table (100 backends, one run)', 'fullApplyMs'],
          [`1 of 100 backends leaves (${f('backendLeaveSlots', 'netlink', 0)} slots)`, 'backendLeaveDeltaMs'],
          ['one slot', 'oneSlotDeltaMs'],
          [`1 of 4 leaves (${f('quarterPoolLeaveSlots', 'netlink', 0)} slots)`, 'quarterPoolLeaveDeltaMs'],
          [`1 of 2 leaves (${f('halfPoolLeaveSlots', 'netlink', 0)} slots)`, 'halfPoolLeaveDeltaMs'],
          ['1 of 4 back within the fold delay', 'quarterPoolFlapDeltaMs'],
          ['1 of 2 back within the fold delay', 'halfPoolFlapDeltaMs'],
          ['restart, nothing to change', 'restartReconcileMs'],
        ]
          .map(
            ([label, k]) =>
              `${(label as string).padEnd(36)}${`${f(k as string, 'netlink')} ms`.padStart(11)}` +
              `${`${f(k as string, 'nft')} ms`.padStart(11)}` +
              `${((figures[`${k}_nft`] as number) / (figures[`${k}_netlink`] as number)).toFixed(1).padStart(9)}x`,
          )
          .join('\n'),
    );
    // The issue's bound for a delta through the netlink writer, up to half of a pool's slots.
    const deltas = ['backendLeaveDeltaMs', 'quarterPoolLeaveDeltaMs', 'halfPoolLeaveDeltaMs'].map(
      (k) => figures[`${k}_netlink`] as number,
    );
    console.log(
      `target: a delta within ${NFT_DELTA_TARGET_MS} ms (1 of 100 / 1 of 4 / 1 of 2 leaving, netlink): ` +
        `${deltas.map((x) => x.toFixed(1)).join(' / ')} ms: ${deltas.every((x) => x <= NFT_DELTA_TARGET_MS) ? 'met' : 'NOT met'}`,
    );
  }
  if (!ONLY_BPF && !SKIP.has('nft-per-packet')) console.log(perPacketReport(figures).join('\n'));
  if (!SKIP.has('per-packet') || !SKIP.has('apply')) console.log(bpfReport(figures).join('\n'));
  if (figures.scPackets !== undefined) console.log(secondChanceReport(figures).join('\n'));
  figures.loadAverageEnd = loadavg()[0] as number;
  console.log(
    `\nload average (1 min) at start ${(figures.loadAverageStart as number).toFixed(1)}, at end ${figures.loadAverageEnd.toFixed(1)}`,
  );
  console.log(machineLine(host));
  const rounded = Object.fromEntries(Object.entries(figures).map(([k, v]) => [k, Math.round(v * 1000) / 1000]));
  console.log(JSON.stringify({ bench: 'dataplane', ...rounded }));
  if (pathsError !== undefined) {
    console.error('\nbpf paths: FAILED:', pathsError);
    process.exitCode = 1;
  }
  if (applyError !== undefined) {
    console.error('\napply latency: FAILED:', applyError);
    process.exitCode = 1;
  }
}

await main();
