/**
 * The bpf driver against the kernel, in network namespaces (root): hash compatibility with @l4fleet/maglev
 * (and so with nftables nodes), direct server return, each encapsulation on the wire, flow affinity, atomic
 * table swaps, restart over the pinned maps, bad input.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import {
  type BpfDataPlane,
  type BpfDataPlaneOptions,
  bpfAvailable,
  createNftablesDataPlane,
  type DataPlane,
  DataPlaneError,
  type Forwarding,
  type VipTable,
} from '@l4fleet/dataplane';
import { buildTable, type Flow, type HashMode, NO_BACKEND, type Protocol, slotOf } from '@l4fleet/maglev';
import type { NetnsHost } from '@l4fleet/test-support/netns';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { decodeDump, encodeVip, encodeVipKey, MapId } from '../../packages/dataplane/src/bpf/codec.js';
import { Op, startLoader } from '../../packages/dataplane/src/bpf/loader.js';
import { DEFAULT_BPF_FLOW_TABLE_SIZE } from '../../packages/dataplane/src/bpf/options.js';
import { dsrBpfDriver } from './bpf-driver.js';
import {
  type CapturedPacket,
  captureEncapsulated,
  countersWhen,
  expectEncapsulated,
  type RawDatagram,
  sendRawDatagrams,
} from './bpf-wire.js';
import { flowKey4, flowSets, readFlow, writeFlow } from './flow-cache.test-helper.js';
import { ON_MEMBER_DOWN_CASES, ON_MEMBER_DOWN_TITLE, onMemberDownCase, withDown } from './member-down.js';
import {
  backend4,
  backend6,
  CLIENT4,
  CLIENT6,
  clearRecorders,
  clientSource4,
  clientSource6,
  createDsrTopology,
  type DsrTopology,
  decapsulatingBackends,
  expectedBackend,
  flowKey,
  installFlowRecorders,
  landings as landingsOf,
  lineClient as lineClientIn,
  NODE4,
  NODE6,
  nameServers as nameServersAt,
  sendFlows as sendFlowsVia,
  VIP4,
  VIP6,
} from './topology.js';

/**
 * VIP addresses of the tests that count `drops.port` exactly (short packets, VLAN): no other test sends to them, so a
 * segment an earlier test's socket still retransmits to VIP4 / VIP6 (a port with no VIP in this test) is not ours
 * there. With VIP4 the VLAN test saw one such drop in about 1 of 5 runs under load (2026-12-07).
 */
const RAW_VIP4 = '198.51.100.76';
const RAW_VIP6 = '2001:db8:77:9::76';
const logger = pino({ level: 'silent' });
const SEED = 0x5eed_1234;
const BACKENDS = 3;
const BPFFS = `/run/l4fleet-bpf-test-${process.pid}`;
const built = bpfAvailable() === undefined;

let topo: DsrTopology;
const sendFlows = (flows: readonly Flow[]): Promise<void> => sendFlowsVia(topo, flows);
const landings = (): Promise<Map<string, number[]>> => landingsOf(topo);
const expected = expectedBackend;
let node2: NetnsHost;
const open: DataPlane[] = [];
let pins = 0;

function bpf(extra: Partial<BpfDataPlaneOptions> = {}): BpfDataPlane {
  const dp = dsrBpfDriver(topo, { bpffsPath: BPFFS, pinName: `t${pins}`, logger }, extra);
  open.push(dp);
  return dp;
}

function vipTable(opts: {
  address: string;
  port: number;
  protocol: Protocol;
  hash?: HashMode;
  size?: number;
  backends?: number;
  forwarding?: Forwarding;
  guePort?: number;
}): VipTable {
  const v6 = opts.address.includes(':');
  const backends = Array.from({ length: opts.backends ?? BACKENDS }, (_x, i) => ({
    name: `b${i}`,
    address: v6 ? backend6(i) : backend4(i),
    port: opts.port,
  }));
  return {
    vip: { address: opts.address, port: opts.port, protocol: opts.protocol },
    hash: opts.hash ?? '5-tuple',
    seed: SEED,
    backends,
    slots: buildTable(backends, opts.size ?? 65_537),
    ...(opts.forwarding ? { forwarding: opts.forwarding } : {}),
    ...(opts.guePort ? { guePort: opts.guePort } : {}),
  };
}

/** 4 x `n` flows to port 1000+k of both VIPs, tcp and udp, from many client addresses. */
function mixedFlows(n: number, port: (v6: boolean, protocol: Protocol) => number, sport = 20_000): Flow[] {
  const flows: Flow[] = [];
  for (const v6 of [false, true]) {
    for (const protocol of ['tcp', 'udp'] as const) {
      for (let i = 0; i < n; i++) {
        flows.push({
          src: v6 ? clientSource6(i) : clientSource4(i),
          sport: sport + i,
          dst: v6 ? VIP6 : VIP4,
          dport: port(v6, protocol),
          protocol,
        });
      }
    }
  }
  return flows;
}

const NODE2_4 = '198.18.72.3';
const NODE2_6 = '2001:db8:77:2::3';

/** Routes the VIP prefixes through node 1 (the topology's node) or through the second node. */
async function routeVia(which: 1 | 2): Promise<void> {
  const [v4, v6] = which === 1 ? [NODE4, NODE6] : [NODE2_4, NODE2_6];
  await topo.router.sh(
    `ip route replace 198.51.100.0/24 via ${v4} && ip -6 route replace 2001:db8:77:9::/64 via ${v6}`,
  );
}

const lineClient = (src: string, sport: number, dst: string, dport: number) =>
  lineClientIn(topo.client, src, sport, dst, dport);
const nameServers = (port: number) => nameServersAt(topo.backends, port);

/** What the maps and the attached program look like (bpftool): equal snapshots = nothing changed. */
async function snapshot(): Promise<string> {
  const dir = `${BPFFS}/t${pins}`;
  const parts: string[] = [];
  for (const m of ['l4f_vips', 'l4f_vip_addrs', 'l4f_config', 'l4f_tables']) {
    const r = spawnSync('bpftool', ['-j', 'map', 'dump', 'pinned', `${dir}/${m}`], { encoding: 'utf8' });
    parts.push(r.stdout);
  }
  parts.push((await topo.node.run(['tc', 'filter', 'show', 'dev', 'eth0', 'ingress'])).stdout);
  return parts.join('\n');
}

beforeAll(async () => {
  topo = await createDsrTopology({ backends: BACKENDS, extraSources: 200 });
  await installFlowRecorders(topo.backends);
  // A second node on the segment, for the mixed nftables + bpf fleet.
  node2 = await topo.lab.host('node2');
  await topo.lab.veth(node2, 'eth0', topo.router, 'n1');
  await topo.router.sh('ip link set n1 master br0');
  await node2.sh(
    `ip addr add ${NODE2_4}/24 dev eth0 && ip addr add ${NODE2_6}/64 dev eth0 nodad && ` +
      'ip route add default via 198.18.72.1 && ip -6 route add default via 2001:db8:77:2::1',
  );
  for (let i = 0; i < BACKENDS; i++) await node2.run(['ping', '-c1', '-W1', backend4(i)], { allowFailure: true });
}, 120_000);

afterEach(async () => {
  for (const dp of open.splice(0)) await dp.close({ removeState: true }).catch(() => undefined);
  pins += 1;
  await routeVia(1);
  await clearRecorders(topo.backends);
});

afterAll(async () => {
  await topo?.cleanup();
  spawnSync('umount', [BPFFS]);
  rmSync(BPFFS, { recursive: true, force: true });
});

describe.skipIf(!built)('bpf data plane', () => {
  test('hash compatibility - 800 flows land where slotOf and the table predict (tcp/udp, v4/v6, 5-tuple/source-ip, l2)', async () => {
    const dp = bpf();
    const tables: VipTable[] = [];
    const want = new Map<string, number>();
    const flows: Flow[] = [];
    for (const hash of ['5-tuple', 'source-ip'] as const) {
      const port = (v6: boolean, protocol: Protocol): number =>
        1000 + (hash === 'source-ip' ? 10 : 0) + (v6 ? 2 : 0) + (protocol === 'udp' ? 1 : 0);
      for (const v6 of [false, true]) {
        for (const protocol of ['tcp', 'udp'] as const) {
          tables.push(vipTable({ address: v6 ? VIP6 : VIP4, port: port(v6, protocol), protocol, hash }));
        }
      }
      for (const f of mixedFlows(100, port, hash === 'source-ip' ? 21_000 : 20_000)) {
        const t = tables.find((x) => x.vip.port === f.dport && x.vip.address === f.dst) as VipTable;
        want.set(flowKey(f), expected(t, f));
        flows.push(f);
      }
    }
    const r = await dp.apply(tables);
    expect(r.vips.every((v) => v.action === 'added')).toBe(true);
    await sendFlows(flows);
    const got = await landings();
    for (const f of flows) expect(got.get(flowKey(f)), flowKey(f)).toEqual([want.get(flowKey(f))]);
    // Every backend got some (the test would pass vacuously if all went to one).
    expect(new Set([...got.values()].flat()).size).toBe(BACKENDS);
    const c = await dp.counters();
    expect(c.vips.reduce((s, v) => s + v.packets, 0)).toBeGreaterThanOrEqual(flows.length);
    expect(c.flowTable.entries).toBeGreaterThanOrEqual(flows.length);
  }, 120_000);
  test('mixed fleet - the same flows through an nftables node and a bpf node land on the same backends', async () => {
    const tables = [
      vipTable({ address: VIP4, port: 1100, protocol: 'tcp' }),
      vipTable({ address: VIP4, port: 1101, protocol: 'udp' }),
      vipTable({ address: VIP6, port: 1102, protocol: 'tcp' }),
      vipTable({ address: VIP6, port: 1103, protocol: 'udp' }),
    ];
    const nft = createNftablesDataPlane({ interface: 'eth0', netns: topo.node.ns, tableName: 'mixed', logger });
    open.push(nft);
    await nft.apply(tables);
    await bpf({ netns: node2.ns, nodeAddresses: [NODE2_4, NODE2_6] }).apply(tables);
    const flows = mixedFlows(100, (v6, protocol) => 1100 + (v6 ? 2 : 0) + (protocol === 'udp' ? 1 : 0), 22_000);

    await routeVia(1);
    await sendFlows(flows);
    const viaNft = await landings();
    await clearRecorders(topo.backends);
    await routeVia(2);
    await sendFlows(flows);
    const viaBpf = await landings();
    for (const f of flows) {
      const t = tables.find((x) => x.vip.port === f.dport) as VipTable;
      expect(viaNft.get(flowKey(f)), `nft ${flowKey(f)}`).toEqual([expected(t, f)]);
      expect(viaBpf.get(flowKey(f)), `bpf ${flowKey(f)}`).toEqual(viaNft.get(flowKey(f)));
    }
  }, 120_000);

  test('draining - a mixed fleet keeps the tables: open TCP connections go on, also on the node ECMP moves them to; SYNs and UDP flows a node does not remember are dropped and counted', async () => {
    const stop = await nameServers(1500);
    const nft = createNftablesDataPlane({ interface: 'eth0', netns: topo.node.ns, tableName: 'drain', logger });
    open.push(nft);
    const bpfNode = bpf({ netns: node2.ns, nodeAddresses: [NODE2_4, NODE2_6] });
    const tcp = vipTable({ address: VIP4, port: 1500, protocol: 'tcp', size: 251 });
    const udp = vipTable({ address: VIP4, port: 1500, protocol: 'udp', size: 251 });
    const onBoth = async (tables: VipTable[]) => {
      await nft.apply(tables);
      await bpfNode.apply(tables);
    };
    const flow = (protocol: Protocol, sport: number): Flow => ({
      src: CLIENT4,
      sport,
      dst: VIP4,
      dport: 1500,
      protocol,
    });
    const owner = (f: Flow) => expected(f.protocol === 'tcp' ? tcp : udp, f);
    const noBackend = async () => [
      (await nft.counters()).drops['no-backend'].packets,
      (await bpfNode.counters()).drops['no-backend'].packets,
    ];
    await onBoth([tcp, udp]);
    // One connection and one UDP flow opened through each node: each node remembers only its own.
    await routeVia(1);
    const viaNft = lineClient(CLIENT4, 33_001, VIP4, 1500);
    const udpNft = flow('udp', 33_101);
    await sendFlows([udpNft]);
    await routeVia(2);
    const viaBpf = lineClient(CLIENT4, 33_002, VIP4, 1500);
    const udpBpf = flow('udp', 33_102);
    await sendFlows([udpBpf]);
    try {
      expect(await viaBpf.ask()).toBe(`b${owner(flow('tcp', 33_002))}`);
      await routeVia(1);
      expect(await viaNft.ask()).toBe(`b${owner(flow('tcp', 33_001))}`);
      const dropsBefore = await noBackend();

      await onBoth([
        { ...tcp, draining: true },
        { ...udp, draining: true },
      ]);
      for (const [via, remembered, moved] of [
        [1, udpNft, udpBpf],
        [2, udpBpf, udpNft],
      ] as const) {
        await routeVia(via);
        await clearRecorders(topo.backends);
        // Both connections answer: the node's own from its flow map, the other's by the table (its socket's backend).
        expect(await viaNft.ask(), `via node ${via}`).toBe(`b${owner(flow('tcp', 33_001))}`);
        expect(await viaBpf.ask(), `via node ${via}`).toBe(`b${owner(flow('tcp', 33_002))}`);
        const refused = [flow('tcp', 33_200 + via), flow('udp', 33_300 + via), moved];
        await sendFlows([remembered, ...refused]);
        const got = await landings();
        expect(got.get(flowKey(remembered)), `via node ${via}`).toEqual([owner(remembered)]);
        for (const f of refused) expect(got.get(flowKey(f)), `via node ${via}: ${flowKey(f)}`).toBeUndefined();
      }
      const dropsDraining = await noBackend();
      // Each node: at least the SYN, the new UDP flow and the other node's UDP flow (a SYN may be sent again).
      expect(dropsDraining[0]! - dropsBefore[0]!).toBeGreaterThanOrEqual(3);
      expect(dropsDraining[1]! - dropsBefore[1]!).toBeGreaterThanOrEqual(3);

      // Enabled again: new flows land on both nodes.
      await onBoth([tcp, udp]);
      for (const via of [1, 2] as const) {
        await routeVia(via);
        await clearRecorders(topo.backends);
        const fresh = [flow('tcp', 33_400 + via), flow('udp', 33_500 + via)];
        await sendFlows(fresh);
        const got = await landings();
        for (const f of fresh) expect(got.get(flowKey(f)), `via node ${via}: ${flowKey(f)}`).toEqual([owner(f)]);
      }
    } finally {
      viaNft.close();
      viaBpf.close();
      stop();
    }
  }, 120_000);

  test.each(['ipip', 'gre', 'gue'] as const)(
    'encapsulation on the wire - %s: outer header from the node to the backend, DF, TTL 64, inner packet unchanged (IPv4 and IPv6)',
    async (mode) => {
      const guePort = 7070;
      const dp = bpf();
      const t4 = vipTable({ address: VIP4, port: 1200, protocol: 'udp', forwarding: mode, guePort });
      const t6 = vipTable({ address: VIP6, port: 1201, protocol: 'tcp', forwarding: mode, guePort });
      await dp.apply([t4, t6]);
      const f4: Flow = { src: CLIENT4, sport: 23_000, dst: VIP4, dport: 1200, protocol: 'udp' };
      const f6: Flow = { src: CLIENT6, sport: 23_001, dst: VIP6, dport: 1201, protocol: 'tcp' };
      for (const [t, f, v6] of [
        [t4, f4, false],
        [t6, f6, true],
      ] as const) {
        const owner = expected(t, f);
        const got = await captureEncapsulated(topo.backends[owner] as NetnsHost, () => sendFlows([f]), {
          count: 1,
          seconds: 3,
          guePort,
        });
        expect(got.length, `${mode} IPv${v6 ? 6 : 4}: captured at b${owner}`).toBe(1);
        expectEncapsulated(got[0] as CapturedPacket, {
          mode,
          flow: f,
          node: v6 ? NODE6 : NODE4,
          backend: v6 ? backend6(owner) : backend4(owner),
          seed: SEED,
          guePort,
        });
      }
    },
    60_000,
  );

  test('encapsulation end to end - GUE, IPIP and GRE through the backend decapsulator (l4fleet backend setup): replies come from the predicted backend', async () => {
    const stop = await nameServers(1300);
    const undo = await decapsulatingBackends(topo, `${BPFFS}-decap`, [NODE4, NODE6]);
    try {
      const dp = bpf();
      let sport = 24_000;
      for (const mode of ['gue', 'ipip', 'gre'] as const) {
        for (const [vip, src] of [
          [VIP4, CLIENT4],
          [VIP6, CLIENT6],
        ] as const) {
          const t = vipTable({ address: vip, port: 1300, protocol: 'tcp', forwarding: mode });
          const other = vipTable({
            address: vip === VIP4 ? VIP6 : VIP4,
            port: 1300,
            protocol: 'tcp',
            forwarding: mode,
          });
          await dp.apply([t, other]);
          for (let i = 0; i < 3; i++, sport++) {
            const f: Flow = { src, sport, dst: vip, dport: 1300, protocol: 'tcp' };
            const c = lineClient(src, sport, vip, 1300);
            try {
              expect(await c.ask(), `${mode} ${flowKey(f)}`).toBe(`b${expected(t, f)}`);
            } finally {
              c.close();
            }
          }
        }
      }
      const counters = await dp.counters();
      expect(counters.drops['too-big']?.packets ?? 0).toBe(0);
    } finally {
      stop();
      await undo();
    }
  }, 120_000);

  test('flow affinity - a live TCP flow keeps its backend when its slot moves; a new flow to that slot follows the table', async () => {
    const stop = await nameServers(1400);
    try {
      const size = 251;
      const t = vipTable({ address: VIP4, port: 1400, protocol: 'tcp', size });
      const dp = bpf();
      await dp.apply([t]);
      const flow: Flow = { src: CLIENT4, sport: 31_000, dst: VIP4, dport: 1400, protocol: 'tcp' };
      const c = lineClient(CLIENT4, 31_000, VIP4, 1400);
      try {
        const first = expected(t, flow);
        expect(await c.ask()).toBe(`b${first}`);
        const slot = slotOf(flow, size, SEED, '5-tuple');
        const moved = (first + 1) % BACKENDS;
        const slots = Int32Array.from(t.slots);
        slots[slot] = moved;
        const r = await dp.apply([{ ...t, slots }]);
        expect(r.slotsChanged).toBe(1);
        expect(await c.ask()).toBe(`b${first}`);
        let sport = 32_000;
        while (slotOf({ ...flow, sport }, size, SEED, '5-tuple') !== slot) sport += 1;
        const fresh = lineClient(CLIENT4, sport, VIP4, 1400);
        try {
          expect(await fresh.ask()).toBe(`b${moved}`);
        } finally {
          fresh.close();
        }
        // The backend leaving the pool: the remembered flow is hashed again (to the moved slot's backend).
        const without = vipTable({ address: VIP4, port: 1400, protocol: 'tcp', size, backends: BACKENDS });
        const gone = { ...without, backends: without.backends.filter((_b, i) => i !== first) };
        const r2 = await dp.apply([{ ...gone, slots: buildTable(gone.backends, size) }]);
        expect(r2.backendsRemoved).toBe(1);
      } finally {
        c.close();
      }
    } finally {
      stop();
    }
  }, 60_000);

  test('table swap - a new table size flips the VIP to a whole new table; new flows during 20 swaps all land on a backend of the old or the new table', async () => {
    const dp = bpf();
    const a = vipTable({ address: VIP4, port: 1500, protocol: 'udp', size: 251 });
    const bBackends = a.backends;
    const b: VipTable = { ...a, slots: buildTable(bBackends.slice(1), 257).map((i) => i + 1) };
    await dp.apply([a]);
    const flows = Array.from(
      { length: 3000 },
      (_x, i): Flow => ({
        src: clientSource4(i % 200),
        sport: 40_000 + i,
        dst: VIP4,
        dport: 1500,
        protocol: 'udp',
      }),
    );
    let swaps = 0;
    const sending = sendFlows(flows);
    const swapping = (async () => {
      for (let i = 0; i < 20; i++) {
        const r = await dp.apply([i % 2 === 0 ? b : a]);
        expect(r.vips[0]?.rulesReplaced).toBe(true);
        swaps += 1;
      }
    })();
    await Promise.all([sending, swapping]);
    expect(swaps).toBe(20);
    const got = await landings();
    for (const f of flows) {
      const at = got.get(flowKey(f));
      expect(at, flowKey(f)).toHaveLength(1);
      expect([expected(a, f), expected(b, f)], flowKey(f)).toContain((at as number[])[0]);
    }
    const c = await dp.counters();
    expect(c.drops['no-backend'].packets).toBe(0);
  }, 60_000);

  test("a new TCP connection (SYN) takes the table's backend even when the flow cache remembers its 5-tuple (a reused port), and replaces that entry", async () => {
    const stop = await nameServers(1410);
    try {
      const t = vipTable({ address: VIP4, port: 1410, protocol: 'tcp', size: 251 });
      const dp = bpf();
      await dp.apply([t]); // fresh pins: backend ids are the backends' indices
      const flow: Flow = { src: CLIENT4, sport: 31_500, dst: VIP4, dport: 1410, protocol: 'tcp' };
      const table = expected(t, flow);
      const other = (table + 1) % BACKENDS;
      // What an earlier connection from the same port would have left: the cache naming another (live) backend,
      // in the flow's own set and way (bpf-flow-cache.int.test.ts proves the program finds such an entry).
      const flows4 = `${BPFFS}/t${pins}/l4f_flows4`;
      const sets = flowSets(DEFAULT_BPF_FLOW_TABLE_SIZE);
      writeFlow(flows4, sets, flowKey4(flow), {
        backend: other,
        prev: 0,
        referenced: false,
      });
      const c = lineClient(CLIENT4, 31_500, VIP4, 1410);
      try {
        expect(await c.ask()).toBe(`b${table}`);
      } finally {
        c.close();
      }
      expect(readFlow(flows4, sets, flowKey4(flow))?.backend).toBe(table);
    } finally {
      stop();
    }
  }, 60_000);

  test.each(ON_MEMBER_DOWN_CASES)(ON_MEMBER_DOWN_TITLE, (mode, vip) =>
    onMemberDownCase(topo, bpf(), vipTable, mode, vip),
  );

  test('counters list a down member of a reselect VIP without traffic (as nftables does), not a removed backend', async () => {
    const dp = bpf();
    const t = vipTable({ address: VIP4, port: 1700, protocol: 'udp', size: 251, backends: 5, forwarding: 'gue' });
    await dp.apply([withDown(t, 4, 'reselect')]);
    const listed = async (): Promise<string[]> => (await dp.counters()).backends.map((b) => b.address).sort();
    expect(await listed()).toEqual([0, 1, 2, 3, 4].map(backend4));
    const removed = { ...t, backends: t.backends.slice(0, 4), slots: buildTable(t.backends.slice(0, 4), 251) };
    await dp.apply([removed]);
    expect(await listed()).toEqual([0, 1, 2, 3].map(backend4));
  });

  test('restart - a new driver reuses the pins and the attached program, changes nothing, keeps the flows, then applies only the delta', async () => {
    const tables = [
      vipTable({ address: VIP4, port: 1600, protocol: 'tcp' }),
      vipTable({ address: VIP6, port: 1601, protocol: 'udp', hash: 'source-ip', forwarding: 'gue' }),
    ];
    const first = bpf();
    const r1 = await first.apply(tables);
    expect(r1.tableCreated).toBe(true);
    await sendFlows([{ src: CLIENT4, sport: 38_000, dst: VIP4, dport: 1600, protocol: 'tcp' }]);
    const prog = await first.programStats();
    await first.close();
    const before = await snapshot();

    const second = bpf();
    const again = await second.apply(tables);
    expect(again.transactions).toBe(0);
    expect(again.tableCreated).toBe(false);
    expect(again.vips.map((v) => v.action)).toEqual(['unchanged', 'unchanged']);
    expect((await second.programStats()).progId).toBe(prog.progId);
    expect(await snapshot()).toBe(before);
    expect((await second.counters()).flowTable.entries).toBe(1);

    const t0 = tables[0] as VipTable;
    const slots = Int32Array.from(t0.slots);
    slots[7] = ((slots[7] as number) + 1) % BACKENDS;
    const delta = await second.apply([{ ...t0, slots }, tables[1] as VipTable]);
    expect(delta.slotsChanged).toBe(1);
    expect(delta.transactions).toBe(1);
    expect(delta.vips.map((v) => v.action)).toEqual(['updated', 'unchanged']);
    const removed = await second.apply([tables[1] as VipTable]);
    expect(removed.vips.map((v) => v.action)).toEqual(['unchanged', 'removed']);
    // removeState: the filter and every pin go (the kernel frees the maps with their last reference).
    await second.close({ removeState: true });
    expect(existsSync(`${BPFFS}/t${pins}`)).toBe(false);
    expect((await topo.node.run(['tc', 'filter', 'show', 'dev', 'eth0', 'ingress'])).stdout).not.toContain('l4f_node');
  }, 60_000);

  test.each([
    ['a mark past every id (0xffffffff: the dump looped for ever)', 4, ['0xff', '0xff', '0xff', '0xff']],
    [
      'a value of 8 bytes (another layout: the lookup wrote past the mark)',
      8,
      ['9', '0', '0', '0', '0', '0', '0', '0'],
    ],
  ])(
    'restart over a bad backends high-water mark pin - %s: replaced by a rescan, the maps read back unchanged',
    async (_, valueSize, value) => {
      const t = vipTable({ address: VIP4, port: 1610, protocol: 'tcp', size: 251 });
      const first = bpf();
      await first.apply([t]);
      await first.close();
      const pin = `${BPFFS}/t${pins}/l4f_backend_hwm`;
      rmSync(pin);
      const tool = (...args: string[]): string => {
        const r = spawnSync('bpftool', args, { encoding: 'utf8' });
        expect(r.status, `bpftool ${args.join(' ')}: ${r.stderr}`).toBe(0);
        return r.stdout;
      };
      tool(
        'map',
        'create',
        pin,
        'type',
        'array',
        'key',
        '4',
        'value',
        String(valueSize),
        'entries',
        '1',
        'name',
        'l4f_backend_hwm',
      );
      tool('map', 'update', 'pinned', pin, 'key', '0', '0', '0', '0', 'value', ...value);

      const second = bpf();
      const again = await second.apply([t]);
      expect(again.transactions).toBe(0);
      expect(again.vips.map((v) => v.action)).toEqual(['unchanged']);
      // Rescanned: the highest backend id in use + 1 (three backends, ids 0-2), in a 4-byte value again.
      const [entry] = JSON.parse(tool('-j', 'map', 'dump', 'pinned', pin)) as { value: string[] }[];
      expect(entry?.value.map((b) => Number(b))).toEqual([3, 0, 0, 0]);
    },
    60_000,
  );

  test('restart with another flowTableSize - the start fails naming both sizes, not only EINVAL', async () => {
    const t = vipTable({ address: VIP4, port: 1611, protocol: 'tcp', size: 251 });
    const first = bpf({ flowTableSize: 1024 });
    await first.apply([t]);
    await first.close();
    const second = bpf({ flowTableSize: 2048 });
    await expect(second.apply([t])).rejects.toMatchObject({
      code: 'BPF_FAILED',
      message: expect.stringMatching(/flowTableSize 2048, pinned maps have 1024 \(.*\/l4f_flows4\)/),
    });
    // The pins and the program are left as they were: removed with the size they have.
    await bpf({ flowTableSize: 1024 }).close({ removeState: true });
  }, 60_000);

  test('static MAC - a backend given with a mac gets the frame at that address, not at its neighbour entry', async () => {
    const macs = await Promise.all(
      topo.backends.map(async (b) => (await b.run(['cat', '/sys/class/net/eth0/address'])).stdout.trim()),
    );
    const base = vipTable({ address: VIP4, port: 1500, protocol: 'udp' });
    // shift 0: each backend's own MAC; shift 1: backend i is given backend i+1's MAC, so its flows land there.
    const withMacs = (shift: number): VipTable => ({
      ...base,
      backends: base.backends.map((b, i) => ({ ...b, mac: macs[(i + shift) % BACKENDS] as string })),
    });
    const flows = (sport: number): Flow[] =>
      Array.from({ length: 60 }, (_x, i) => ({
        src: clientSource4(i),
        sport: sport + i,
        dst: VIP4,
        dport: 1500,
        protocol: 'udp' as const,
      }));
    const dp = bpf();
    for (const shift of [0, 1]) {
      await dp.apply([withMacs(shift)]);
      const sent = flows(40_000 + shift * 100);
      await sendFlows(sent);
      const got = await landings();
      for (const f of sent) expect(got.get(flowKey(f)), flowKey(f)).toEqual([(expected(base, f) + shift) % BACKENDS]);
      await clearRecorders(topo.backends);
    }
  }, 60_000);
  test('ICMP - fragmentation needed / packet too big about a VIP flow reaches the backend that owns the flow; counted forwarded only when it was', async () => {
    const dp = bpf();
    const t4 = vipTable({ address: VIP4, port: 1700, protocol: 'tcp' });
    const t6 = vipTable({ address: VIP6, port: 1700, protocol: 'tcp' });
    await dp.apply([t4, t6]);
    // The backend's reply VIP:1700 -> client:sport was too big somewhere: the error goes to the VIP.
    const py = `
import socket, struct, sys
def csum(b):
    if len(b) % 2: b += b'\\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
vip4, cli4, vip6, cli6, sp4, sp6 = sys.argv[1:7]
ports4 = struct.pack('!HH', 1700, int(sp4)) + b'\\0' * 4
inner4 = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 40, 0, 0x4000, 64, 6, 0, socket.inet_aton(vip4), socket.inet_aton(cli4))
body = struct.pack('!HH', 0, 1400) + inner4 + ports4
msg = struct.pack('!BBH', 3, 4, 0) + body
msg = msg[:2] + struct.pack('!H', csum(msg)) + msg[4:]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.sendto(msg, (vip4, 0))
inner6 = struct.pack('!IHBB16s16s', 6 << 28, 20, 6, 64, socket.inet_pton(socket.AF_INET6, vip6), socket.inet_pton(socket.AF_INET6, cli6))
msg6 = struct.pack('!BBHI', 2, 0, 0, 1280) + inner6 + struct.pack('!HH', 1700, int(sp6)) + b'\\0' * 16
s6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s6.sendto(msg6, (vip6, 0))
`;
    await topo.client.run(['python3', '-c', py, VIP4, CLIENT4, VIP6, CLIENT6, '45000', '45001']);
    const f4: Flow = { src: CLIENT4, sport: 45_000, dst: VIP4, dport: 1700, protocol: 'tcp' };
    const f6: Flow = { src: CLIENT6, sport: 45_001, dst: VIP6, dport: 1700, protocol: 'tcp' };
    const got = await landings();
    const icmp = [...got].filter(([k]) => /\|(ipv6-)?icmp\|/.test(k));
    expect(icmp.find(([k]) => k.startsWith(`${CLIENT4}|`))?.[1]).toEqual([expected(t4, f4)]);
    expect(icmp.find(([k]) => k.startsWith(`${CLIENT6}|`))?.[1]).toEqual([expected(t6, f6)]);
    const before = await dp.counters();
    expect(before.icmp?.errorsForwarded?.packets).toBe(2);
    expect(before.drops['no-backend']?.packets).toBe(0);
    // No slot has a backend: the errors are dropped as no-backend, and not counted as forwarded too.
    const empty = (t: VipTable): VipTable => ({ ...t, slots: new Int32Array(t.slots.length).fill(NO_BACKEND) });
    await dp.apply([empty(t4), empty(t6)]);
    await topo.client.run(['python3', '-c', py, VIP4, CLIENT4, VIP6, CLIENT6, '45002', '45003']);
    const after = await dp.counters();
    expect(after.drops['no-backend']?.packets).toBe(2);
    expect(after.icmp?.errorsForwarded?.packets).toBe(2);
  }, 60_000);

  test('a failed request stops the send - a VIP entry after a table create that failed is refused, not pointed at the missing table', async () => {
    const first = bpf();
    await first.apply([vipTable({ address: VIP4, port: 1900, protocol: 'tcp', size: 251 })]);
    await first.close();
    const u32s = (...xs: number[]): Buffer => Buffer.from(Uint32Array.from(xs).buffer);
    const key = encodeVipKey({
      family: 4,
      addressHex: Buffer.from(VIP4.split('.').map(Number)).toString('hex'),
      port: 1901,
      protocol: 'tcp',
    });
    const value = encodeVip({
      ...{ id: 1, table: 2, size: 251, seed: SEED, hash: '5-tuple', forwarding: 'l2', guePort: 6080 },
      ...{ sourceRanges: false, draining: false },
    });
    const l = startLoader({
      pinDir: `${BPFFS}/t${pins}`,
      iface: 'eth0',
      netns: topo.node.ns,
      flowTableSize: DEFAULT_BPF_FLOW_TABLE_SIZE,
      xdp: 'off',
      logger,
    });
    try {
      await l.started;
      const send = l.send([
        { op: Op.tableCreate, payload: u32s(2, 0), what: 'table-create' }, // size 0: refused
        { op: Op.update, payload: Buffer.concat([u32s(MapId.vips, 1), key, value]), what: 'vips' },
      ]);
      await expect(send).rejects.toThrow(/table-create: table-create: index 2 \/ size 0/);
      const [dump] = await l.send([{ op: Op.dump, payload: Buffer.alloc(0), what: 'dump' }]);
      expect(decodeDump(dump as Buffer).vips.map((v) => v.key.port)).toEqual([1900]);
    } finally {
      await l.close();
    }
    bpf(); // the same pins: afterEach removes them
  }, 60_000);

  test("counters - a new VIP given a removed VIP's id starts from zero, not from the removed VIP's packets", async () => {
    const dp = bpf();
    const flows = (dport: number): Flow[] =>
      Array.from({ length: 5 }, (_x, i) => ({
        src: clientSource4(i),
        sport: 41_000 + i,
        dst: VIP4,
        dport,
        protocol: 'udp' as const,
      }));
    await dp.apply([vipTable({ address: VIP4, port: 2000, protocol: 'udp', size: 251 })]);
    await sendFlows(flows(2000));
    expect((await dp.counters()).vips.map((v) => [v.vip, v.packets])).toEqual([[`${VIP4}:2000/udp`, 5]]);
    await dp.apply([]);
    // The lowest free VIP id: the removed VIP's.
    await dp.apply([vipTable({ address: VIP4, port: 2001, protocol: 'udp', size: 251 })]);
    expect((await dp.counters()).vips.map((v) => [v.vip, v.packets, v.bytes])).toEqual([[`${VIP4}:2001/udp`, 0, 0]]);
    await sendFlows(flows(2001).slice(0, 2));
    expect((await dp.counters()).vips.map((v) => v.packets)).toEqual([2]);
  }, 60_000);

  test('too big to encapsulate - a full-MTU packet with GUE is dropped and counted (too-big)', async () => {
    const dp = bpf();
    await dp.apply([vipTable({ address: VIP4, port: 1800, protocol: 'udp', forwarding: 'gue' })]);
    await topo.client.run([
      'python3',
      '-c',
      `import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.setsockopt(socket.IPPROTO_IP, 10, 2); s.sendto(b'x' * 1472, ('${VIP4}', 1800)); s.sendto(b'x' * 100, ('${VIP4}', 1800))`,
    ]);
    const c = await dp.counters();
    expect(c.drops['too-big']?.packets).toBe(1);
    expect(c.vips[0]?.packets).toBe(2);
  }, 60_000);

  test('short packets - an IP length field that leaves no room for the ports, or runs past the frame, is not TCP / UDP: dropped as port, never counted as the VIP or forwarded', async () => {
    const dp = bpf();
    await dp.apply([
      vipTable({ address: RAW_VIP4, port: 1900, protocol: 'udp' }),
      vipTable({ address: RAW_VIP6, port: 1900, protocol: 'udp' }),
    ]);
    const mac = (await topo.node.sh('cat /sys/class/net/eth0/address')).trim();
    const v4 = { src: CLIENT4, dst: RAW_VIP4, sport: 29_000, dport: 1900 };
    const v6 = { src: CLIENT6, dst: RAW_VIP6, sport: 29_000, dport: 1900 };
    // The bad ones first, then one good datagram per family: once those are counted, the ones before were seen.
    const bad: RawDatagram[] = [
      { ...v4, ipLength: 20 }, // the IP header alone: the "ports" are padding after it
      { ...v4, ipLength: 20 + 9 + 100 }, // 100 bytes more than the frame holds
      { ...v6, ipLength: 0 },
      { ...v6, ipLength: 9 + 100 },
    ];
    await sendRawDatagrams(topo.router, 'br0', mac, [...bad, ...bad, v4, v6]);
    const c = await countersWhen(dp, (x) => x.vips.reduce((n, v) => n + v.packets, 0) >= 2);
    expect(c.vips.map((v) => v.packets)).toEqual([1, 1]);
    expect(c.drops.port.packets).toBe(2 * bad.length);
  }, 60_000);

  test('VLAN - a tagged frame (VLAN id != 0) belongs to its VLAN device: not served (not counted, not forwarded tagged); a priority-tagged one (id 0) is served', async () => {
    const dp = bpf();
    await dp.apply([
      vipTable({ address: RAW_VIP4, port: 1901, protocol: 'udp' }),
      vipTable({ address: RAW_VIP6, port: 1901, protocol: 'udp' }),
    ]);
    const mac = (await topo.node.sh('cat /sys/class/net/eth0/address')).trim();
    const v4 = { src: CLIENT4, dst: RAW_VIP4, sport: 29_100, dport: 1901 };
    const v6 = { src: CLIENT6, dst: RAW_VIP6, sport: 29_100, dport: 1901 };
    const tagged: RawDatagram[] = [
      { ...v4, vlan: 100 },
      { ...v6, vlan: 100 },
    ];
    // 802.1p priority tags (VLAN id 0): the kernel hands them to this interface as untagged frames, so they are ours.
    const priority: RawDatagram[] = [
      { ...v4, vlan: 0 },
      { ...v6, vlan: 0 },
    ];
    await sendRawDatagrams(topo.router, 'br0', mac, [...tagged, ...tagged, ...priority, v4, v6]);
    const c = await countersWhen(dp, (x) => x.vips.reduce((n, v) => n + v.packets, 0) >= 4);
    expect(c.vips.map((v) => v.packets)).toEqual([2, 2]);
    expect(c.backends.reduce((n, b) => n + b.packets, 0)).toBe(4);
    expect(c.drops.port.packets).toBe(0);
  }, 60_000);

  test('bad input - typed errors naming field and value; the maps and the program stay as they were', async () => {
    const dp = bpf({ nodeAddresses: [NODE4] });
    const good = vipTable({ address: VIP4, port: 1900, protocol: 'tcp', forwarding: 'ipip' });
    await dp.apply([good]);
    await dp.settled(); // the next VIP's table, made ready after the apply, is in the snapshot
    const before = await snapshot();
    const cases: [VipTable[], string, RegExp][] = [
      [[{ ...good, forwarding: 'vxlan' as Forwarding }], 'VIP_INVALID', /forwarding "vxlan"/],
      [[{ ...good, guePort: 70_000 }], 'VIP_INVALID', /guePort 70000/],
      [
        [good, vipTable({ address: VIP6, port: 1900, protocol: 'tcp', forwarding: 'gue' })],
        'NODE_ADDRESS_MISSING',
        /IPv6 node address/,
      ],
      [[{ ...good, backends: good.backends.map((b) => ({ ...b, port: 8080 })) }], 'BACKEND_PORT_MISMATCH', /8080/],
      [[{ ...good, slots: new Int32Array(65_536) }], 'SLOTS_INVALID', /65536/],
      [[good, good], 'VIP_DUPLICATE', /1900/],
    ];
    for (const [desired, code, message] of cases) {
      const err = await dp.apply(desired).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DataPlaneError);
      expect((err as DataPlaneError).code).toBe(code);
      expect((err as DataPlaneError).message).toMatch(message);
    }
    expect(() => bpf({ nodeAddresses: ['198.18.0.300'] })).toThrow(/nodeAddresses\[0\]/);
    expect(() => bpf({ nodeAddresses: [NODE4, NODE2_4] })).toThrow(/second IPv4 address/);
    await expect(bpf({ interface: 'nope0', pinName: 'nope' }).apply([good])).rejects.toMatchObject({
      code: 'INTERFACE_UNKNOWN',
    });
    // The loader joins the namespace itself (setns on /run/netns/NAME): a bad or missing one is named.
    expect(() => bpf({ netns: '../x' })).toThrow(/netns: "\.\.\/x" is not a namespace name/);
    const noNs = `${topo.node.ns}-gone`;
    await expect(bpf({ netns: noNs, pinName: 'nons' }).apply([good])).rejects.toThrow(
      new RegExp(`netns ${noNs} \\(/run/netns/${noNs}\\): No such file or directory`),
    );
    expect(await snapshot()).toBe(before);
    expect((await dp.apply([good])).transactions).toBe(0);
    // nftables refuses encapsulation before touching the kernel.
    const nft = createNftablesDataPlane({ interface: 'eth0', netns: topo.node.ns, tableName: 'refuse', logger });
    open.push(nft);
    const err = await nft.apply([good]).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'FORWARDING_UNSUPPORTED' });
    expect((err as Error).message).toMatch(/forwarding "ipip"/);
    expect((await topo.node.run(['nft', 'list', 'tables'])).stdout).not.toContain('refuse');
  }, 60_000);
});
