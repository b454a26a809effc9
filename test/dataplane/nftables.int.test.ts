/**
 * The nftables driver against the kernel, in network namespaces (root): hash compatibility with
 * @l4fleet/maglev, direct server return, port filtering, flow affinity, deltas, restart reconcile.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import {
  createNftablesDataPlane,
  type DataPlane,
  DataPlaneError,
  type NftablesDataPlaneOptions,
  type VipTable,
} from '@l4fleet/dataplane';
import { buildTable, type Flow, flowHash, type HashMode, NO_BACKEND, type Protocol, slotOf } from '@l4fleet/maglev';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { NFT_BATCH_PATH } from '../../packages/dataplane/src/nft/batch.js';
import { FLOW_KEY_SEEDS } from '../../packages/dataplane/src/nft/ruleset.js';
import { countersWhen, type RawDatagram, sendRawDatagrams } from './bpf-wire.js';
import { ON_MEMBER_DOWN_CASES, ON_MEMBER_DOWN_TITLE, onMemberDownCase } from './member-down.js';
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
  expectedBackend,
  flowKey,
  installFlowRecorders,
  LINE_CLIENT_PY,
  landings as landingsOf,
  NAME_SERVER_PY,
  sendFlows as sendFlowsVia,
  VIP4,
  VIP6,
} from './topology.js';

const logger = pino({ level: 'silent' });
const SEED = 0x5eed_1234;
const BACKENDS = 3;

let topo: DsrTopology;
const sendFlows = (flows: readonly Flow[]): Promise<void> => sendFlowsVia(topo, flows);
const landings = (): Promise<Map<string, number[]>> => landingsOf(topo);
const expected = expectedBackend;
const open: DataPlane[] = [];

function dataPlane(extra: Partial<NftablesDataPlaneOptions> = {}): DataPlane {
  const dp = createNftablesDataPlane({ interface: 'eth0', netns: topo.node.ns, logger, ...extra });
  open.push(dp);
  return dp;
}

function vipTable(opts: {
  address: string;
  port: number;
  protocol: Protocol;
  hash?: HashMode;
  size?: number;
  macs?: readonly string[];
  backends?: number;
}): VipTable {
  const v6 = opts.address.includes(':');
  const backends = Array.from({ length: opts.backends ?? BACKENDS }, (_x, i) => ({
    name: `b${i}`,
    address: v6 ? backend6(i) : backend4(i),
    port: opts.port,
    ...(opts.macs ? { mac: opts.macs[i] as string } : {}),
  }));
  return {
    vip: { address: opts.address, port: opts.port, protocol: opts.protocol },
    hash: opts.hash ?? '5-tuple',
    seed: SEED,
    backends,
    slots: buildTable(backends, opts.size ?? 65_537),
  };
}

/**
 * Sends UDP datagrams of `size` bytes, each from its own socket (`src`, `sport`) to `dst` port 53; `option`: behind an
 * IPv6 hop-by-hop or destination options header (8 bytes: the next header, which the kernel fills, length 0, PadN).
 */
const ODD_DATAGRAMS_PY = `
import json, socket, sys, time
PADDED = bytes([0, 0, 1, 4, 0, 0, 0, 0])
for d in json.load(sys.stdin):
    fam = socket.AF_INET6 if ':' in d['dst'] else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.bind((d['src'], d['sport']))
    if d.get('option') == 'hop-by-hop':
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_HOPOPTS, PADDED)
    elif d.get('option') == 'destination':
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_DSTOPTS, PADDED)
    s.sendto(b'x' * d['size'], (d['dst'], 53))
    s.close()
time.sleep(0.3)
`;

/** `n` flows to VIP4:80, source ports from `sport`, from one client address or many (`src`). */
function flowsToVip4(n: number, sport: number, protocol: Protocol, src: (i: number) => string = () => CLIENT4): Flow[] {
  return Array.from({ length: n }, (_x, i) => ({ src: src(i), sport: sport + i, dst: VIP4, dport: 80, protocol }));
}

/** Sends the flows; each must land on backend `want(f)` (an index into the topology's backends). */
async function expectLandings(flows: readonly Flow[], want: (f: Flow) => number): Promise<void> {
  await sendFlows(flows);
  const got = await landings();
  for (const f of flows) expect(got.get(flowKey(f))).toEqual([want(f)]);
}

async function macOf(i: number): Promise<string> {
  const r = await (topo.backends[i] as DsrTopology['client']).run(['cat', '/sys/class/net/eth0/address']);
  return r.stdout.trim();
}

beforeAll(async () => {
  topo = await createDsrTopology({ backends: BACKENDS, extraSources: 200 });
  await installFlowRecorders(topo.backends);
}, 120_000);

afterEach(async () => {
  for (const dp of open.splice(0)) await dp.close({ removeState: true }).catch(() => undefined);
  await clearRecorders(topo.backends);
});

afterAll(async () => {
  await topo?.cleanup();
});

describe('nftables data plane', () => {
  test('hash compatibility - 1,350 flows land where slotOf and the table predict (tcp/udp, v4/v6, 5-tuple/source-ip, static MAC)', async () => {
    const macs = await Promise.all(topo.backends.map((_b, i) => macOf(i)));
    const tables: VipTable[] = [];
    const flows: Flow[] = [];
    const want = new Map<string, number>();
    let port = 0;
    for (const address of [VIP4, VIP6]) {
      for (const protocol of ['tcp', 'udp'] as const) {
        for (const hash of ['5-tuple', 'source-ip'] as const) {
          port += 1;
          const t = vipTable({ address, port: 1000 + port, protocol, hash });
          tables.push(t);
          for (let i = 0; i < 150; i++) {
            const v6 = address.includes(':');
            const src = hash === 'source-ip' ? (v6 ? clientSource6(i) : clientSource4(i)) : v6 ? CLIENT6 : CLIENT4;
            const f = { src, sport: 20_000 + port * 200 + i, dst: address, dport: t.vip.port, protocol };
            flows.push(f);
            want.set(flowKey(f), expected(t, f));
          }
        }
      }
    }
    // Backends given by static MAC take the ether-rewrite path instead of the neighbour table.
    const withMacs = vipTable({ address: VIP4, port: 2000, protocol: 'tcp', macs });
    tables.push(withMacs);
    for (let i = 0; i < 150; i++) {
      const f = { src: CLIENT4, sport: 40_000 + i, dst: VIP4, dport: 2000, protocol: 'tcp' as const };
      flows.push(f);
      want.set(flowKey(f), expected(withMacs, f));
    }
    const dp = dataPlane();
    const result = await dp.apply(tables);
    expect(result.tableCreated).toBe(true);
    expect(result.vips.map((v) => v.action)).toEqual(tables.map(() => 'added'));
    await sendFlows(flows);

    const seen = await landings();
    const wrong = flows.filter((f) => JSON.stringify(seen.get(flowKey(f))) !== JSON.stringify([want.get(flowKey(f))]));
    expect(wrong.slice(0, 5)).toEqual([]);
    expect(flows.length).toBeGreaterThanOrEqual(1000);
    // Every backend got some: the test would notice a driver that sends everything to one place.
    for (const b of [0, 1, 2]) expect([...want.values()].filter((x) => x === b).length).toBeGreaterThan(100);
    const c = await dp.counters();
    expect(c.vips.reduce((n, v) => n + v.packets, 0)).toBeGreaterThanOrEqual(flows.length);
    expect(c.backends.reduce((n, b) => n + b.packets, 0)).toBeGreaterThanOrEqual(flows.length);
    expect(c.flowTable.entries).toBeGreaterThanOrEqual(flows.length);
  });

  test('direct server return, flow affinity - replies bypass the node; a moved slot keeps its old flow and sends new ones to the new backend', async () => {
    const servers = topo.backends.map((b, i) => b.spawn(['python3', '-c', NAME_SERVER_PY, `b${i}`, '80']));
    await Promise.all(servers.map((s) => new Promise((r) => s.stdout?.once('data', r))));
    await topo.node.run(['nft', '-f', '-'], {
      input:
        'table netdev obs {\n  counter replies { }\n  counter requests { }\n' +
        '  chain c { type filter hook ingress device "eth0" priority -500; policy accept;\n' +
        `    ip saddr ${VIP4} counter name "replies"\n    ip6 saddr ${VIP6} counter name "replies"\n` +
        `    ip daddr ${VIP4} counter name "requests"\n  }\n}\n`,
    });
    try {
      const size = 251;
      const t = vipTable({ address: VIP4, port: 80, protocol: 'tcp', size });
      const udp6 = vipTable({ address: VIP6, port: 80, protocol: 'udp', size });
      const dp = dataPlane();
      await dp.apply([t, udp6]);

      const flow = { src: CLIENT4, sport: 31_000, dst: VIP4, dport: 80, protocol: 'tcp' as const };
      const client = spawn('ip', [
        'netns',
        'exec',
        topo.client.ns,
        'python3',
        '-c',
        LINE_CLIENT_PY,
        CLIENT4,
        '31000',
        VIP4,
        '80',
      ]);
      const lines = createInterface({ input: client.stdout })[Symbol.asyncIterator]();
      const ask = async (): Promise<string> => {
        client.stdin.write('x\n');
        const next = await Promise.race([
          lines.next(),
          new Promise<never>((_r, j) => setTimeout(() => j(new Error('no reply')), 5000)),
        ]);
        return String(next.value);
      };
      try {
        const first = expected(t, flow);
        expect(await ask()).toBe(`b${first}`);

        // Move the flow's slot to another backend: one slot, one transaction.
        const slot = slotOf(flow, size, SEED, '5-tuple');
        const moved = (first + 1) % BACKENDS;
        const slots = Int32Array.from(t.slots);
        slots[slot] = moved;
        const r = await dp.apply([{ ...t, slots }, udp6]);
        expect(r.slotsChanged).toBe(1);
        expect(r.transactions).toBe(1);
        expect(r.tableCreated).toBe(false);

        expect(await ask()).toBe(`b${first}`); // the established flow stays
        // A new flow to the same slot follows the new table.
        let sport = 32_000;
        while (slotOf({ ...flow, sport }, size, SEED, '5-tuple') !== slot) sport += 1;
        const fresh = await topo.client.run(['python3', '-c', LINE_CLIENT_PY, CLIENT4, String(sport), VIP4, '80'], {
          input: 'x\n',
        });
        expect(fresh.stdout.trim()).toBe(`b${moved}`);
      } finally {
        client.kill();
      }

      // UDP over IPv6, same DSR path.
      const udpFlow = { src: CLIENT6, sport: 33_000, dst: VIP6, dport: 80, protocol: 'udp' as const };
      const reply = await topo.client.run([
        'python3',
        '-c',
        `import socket; s=socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.bind(('${CLIENT6}', 33000)); s.settimeout(3); s.sendto(b'x', ('${VIP6}', 80)); print(s.recv(100).decode().strip())`,
      ]);
      expect(reply.stdout.trim()).toBe(`b${expected(udp6, udpFlow)}`);

      const obs = await topo.node.run(['nft', '-j', 'list', 'counters', 'table', 'netdev', 'obs']);
      const counters = Object.fromEntries(
        (JSON.parse(obs.stdout).nftables as { counter?: { name: string; packets: number } }[])
          .filter((o) => o.counter)
          .map((o) => [o.counter?.name, o.counter?.packets]),
      );
      expect(counters.requests).toBeGreaterThan(0); // the observer works
      expect(counters.replies).toBe(0); // and no reply ever reached the node
    } finally {
      await topo.node.run(['nft', 'delete', 'table', 'netdev', 'obs'], { allowFailure: true });
      for (const s of servers) s.kill('SIGKILL');
    }
  });

  test("a new TCP connection (SYN) takes the table's backend even when the flow map remembers its 5-tuple (a reused port), IPv4 and IPv6", async () => {
    const servers = topo.backends.map((b, i) => b.spawn(['python3', '-c', NAME_SERVER_PY, `b${i}`, '1410']));
    await Promise.all(servers.map((s) => new Promise((r) => s.stdout?.once('data', r))));
    try {
      const t4 = vipTable({ address: VIP4, port: 1410, protocol: 'tcp', size: 251 });
      const t6 = vipTable({ address: VIP6, port: 1410, protocol: 'tcp', size: 251 });
      const dp = dataPlane();
      await dp.apply([t4, t6]);
      const listed = await topo.node.run(['nft', '-j', 'list', 'table', 'netdev', 'l4fleet']);
      // backend id by address, from the backends maps
      const ids = new Map<string, number>();
      for (const o of JSON.parse(listed.stdout).nftables as { map?: { name: string; elem?: [number, string][] } }[]) {
        if (!o.map?.name.startsWith('backends')) continue;
        for (const [id, address] of o.map.elem ?? []) ids.set(address, id);
      }
      const flow4: Flow = { src: CLIENT4, sport: 31_500, dst: VIP4, dport: 1410, protocol: 'tcp' };
      const flow6: Flow = { src: CLIENT6, sport: 31_500, dst: VIP6, dport: 1410, protocol: 'tcp' };
      const other = (t: VipTable, f: Flow) => (expected(t, f) + 1) % BACKENDS;
      const otherId = (address: string) => `0x${(ids.get(address) as number).toString(16)}`;
      // What an earlier connection from the same port would have left: entries naming another (live) backend.
      const id4 = otherId(backend4(other(t4, flow4)));
      const id6 = otherId(backend6(other(t6, flow6)));
      const tuple6 = `${CLIENT6} . 31500 . ${VIP6} . 1410`;
      await topo.node.run(['nft', '-f', '-'], {
        input: [
          `add element netdev l4fleet flows4_tcp { ${CLIENT4} . 31500 . ${VIP4} . 1410 : ${id4} }`,
          `add element netdev l4fleet flows6_tcp { ${flowHash(flow6, FLOW_KEY_SEEDS[0])} : ${id6} }`,
          `add element netdev l4fleet flows6b_tcp { ${flowHash(flow6, FLOW_KEY_SEEDS[1])} : ${id6} }`,
          `add element netdev l4fleet exact6_tcp { ${tuple6} . ${id6} }`,
          '',
        ].join('\n'),
      });
      for (const [t, f, address] of [
        [t4, flow4, VIP4],
        [t6, flow6, VIP6],
      ] as const) {
        const answer = await topo.client.run(['python3', '-c', LINE_CLIENT_PY, f.src, '31500', address, '1410'], {
          input: 'x\nx\n',
        });
        // Both lines: the SYN went by the table, and the packets after it followed the entry it left.
        expect(answer.stdout.trim().split('\n')).toEqual([`b${expected(t, f)}`, `b${expected(t, f)}`]);
      }
    } finally {
      for (const s of servers) s.kill('SIGKILL');
    }
  });

  test('IPv6 affinity is exact - two live flows whose first 32-bit flow keys collide each keep their own backend, across a table change', async () => {
    // The IPv6 flow map is keyed by jhash(5-tuple) (nft 1.0.6 limit, see ruleset.ts); find two flows
    // with the same key by the birthday bound over source ports (~2^16 tries per expected collision).
    const t = vipTable({ address: VIP6, port: 53, protocol: 'udp' });
    const seen = new Map<number, Flow>();
    let pair: [Flow, Flow] | undefined;
    for (let src = 0; src < 8 && pair === undefined; src++) {
      for (let sport = 1024; sport < 65_536; sport++) {
        const f = { src: clientSource6(src), sport, dst: VIP6, dport: 53, protocol: 'udp' as const };
        const key = flowHash(f, FLOW_KEY_SEEDS[0]);
        const other = seen.get(key);
        if (other !== undefined && expected(t, other) !== expected(t, f)) {
          pair = [other, f];
          break;
        }
        seen.set(key, f);
      }
    }
    expect(pair).toBeDefined();
    const [a, b] = pair as [Flow, Flow];
    const dp = dataPlane();
    await dp.apply([t]);
    await sendFlows([a]);
    await sendFlows([b]);
    const got = await landings();
    expect(got.get(flowKey(a))).toEqual([expected(t, a)]);
    // Before the exact set, b followed a's remembered backend.
    expect(got.get(flowKey(b))).toEqual([expected(t, b)]);
    // b's slot moves: b keeps its backend, remembered under its second hash (with one hash map it would
    // follow the table, since its first hash is a's).
    const slots = Int32Array.from(t.slots);
    const slot = slotOf(b, t.slots.length, t.seed, t.hash);
    slots[slot] = ((slots[slot] as number) + 1) % BACKENDS;
    await dp.apply([{ ...t, slots }]);
    await clearRecorders(topo.backends);
    await sendFlows([b]);
    expect((await landings()).get(flowKey(b))).toEqual([expected(t, b)]);
  });

  test('port filtering - other ports and protocols to a VIP address are dropped and counted', async () => {
    const dp = dataPlane();
    const t = vipTable({ address: VIP4, port: 80, protocol: 'tcp' });
    await dp.apply([t]);
    const flows: Flow[] = [
      { src: CLIENT4, sport: 34_001, dst: VIP4, dport: 81, protocol: 'tcp' },
      { src: CLIENT4, sport: 34_002, dst: VIP4, dport: 80, protocol: 'udp' },
      { src: CLIENT4, sport: 34_003, dst: VIP4, dport: 80, protocol: 'tcp' },
    ];
    await sendFlows(flows);
    const seen = await landings();
    expect(seen.get(flowKey(flows[0] as Flow))).toBeUndefined();
    expect(seen.get(flowKey(flows[1] as Flow))).toBeUndefined();
    expect(seen.get(flowKey(flows[2] as Flow))).toEqual([expected(t, flows[2] as Flow)]);
    const c = await dp.counters();
    // The SYN to :81 may be retransmitted once within the sender's 0.3 s; the datagram is sent once.
    expect(c.drops.port.packets).toBeGreaterThanOrEqual(2);
    expect(c.vips).toEqual([expect.objectContaining({ vip: `${VIP4}:80/tcp`, packets: expect.any(Number) })]);
  });

  test('not VIP traffic, as in bpf - IPv4 fragments (the first too) and IPv6 packets with an extension header to a VIP port are dropped (fragment, port): not counted for the VIP, not remembered, not forwarded', async () => {
    const dp = dataPlane();
    const tables = [VIP4, VIP6].map((address) => vipTable({ address, port: 53, protocol: 'udp' }));
    await dp.apply(tables);
    // One ordinary datagram per family first: the VIPs forward, and what they count and remember is the baseline.
    const control: Flow[] = [CLIENT4, CLIENT6].map((src, i) => ({
      src,
      sport: 34_500 + i,
      dst: i === 0 ? VIP4 : VIP6,
      dport: 53,
      protocol: 'udp',
    }));
    await sendFlows(control);
    const seen = await landings();
    for (const [i, f] of control.entries()) {
      expect(seen.get(flowKey(f)), f.dst).toEqual([expected(tables[i] as VipTable, f)]);
    }
    const before = await dp.counters();
    const datagrams = [
      // 3,000 bytes over a 1,500-byte link: the client's kernel sends fragments (IPv6: behind a fragment header).
      { src: CLIENT4, sport: 34_510, dst: VIP4, size: 3_000 },
      { src: CLIENT6, sport: 34_511, dst: VIP6, size: 3_000 },
      // One small datagram each behind a hop-by-hop and a destination options header.
      { src: CLIENT6, sport: 34_512, dst: VIP6, size: 8, option: 'hop-by-hop' },
      { src: CLIENT6, sport: 34_513, dst: VIP6, size: 8, option: 'destination' },
    ];
    await topo.client.run(['python3', '-c', ODD_DATAGRAMS_PY], { input: JSON.stringify(datagrams), timeoutMs: 30_000 });
    const after = await dp.counters();
    expect(after.vips).toEqual(before.vips);
    expect(after.flowTable.entries).toBe(before.flowTable.entries);
    // At least two fragments per datagram, each counted once; the option headers count as other ports do.
    expect((after.drops.fragment?.packets ?? 0) - (before.drops.fragment?.packets ?? 0)).toBeGreaterThanOrEqual(4);
    expect(after.drops.port.packets - before.drops.port.packets).toBeGreaterThanOrEqual(2);
    const landed = await landings();
    for (const d of datagrams) expect(landed.get(`${d.src}|udp|${d.sport}`), String(d.sport)).toBeUndefined();
  });

  test('VLAN, as in bpf - a tagged frame (VLAN id != 0) belongs to its VLAN device: not counted, not forwarded tagged; a priority-tagged one (id 0) is served', async () => {
    const dp = dataPlane();
    const tables = [VIP4, VIP6].map((address) => vipTable({ address, port: 1901, protocol: 'udp' }));
    await dp.apply(tables);
    const mac = (await topo.node.sh('cat /sys/class/net/eth0/address')).trim();
    const v4 = { src: CLIENT4, dst: VIP4, sport: 29_100, dport: 1901 };
    const v6 = { src: CLIENT6, dst: VIP6, sport: 29_100, dport: 1901 };
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
  });

  test('no backend - slots without a backend drop and count instead of forwarding', async () => {
    const dp = dataPlane();
    const t = vipTable({ address: VIP4, port: 80, protocol: 'tcp' });
    await dp.apply([{ ...t, slots: new Int32Array(t.slots.length).fill(NO_BACKEND) }]);
    await sendFlows([{ src: CLIENT4, sport: 34_100, dst: VIP4, dport: 80, protocol: 'tcp' }]);
    expect((await landings()).size).toBe(0);
    expect((await dp.counters()).drops['no-backend'].packets).toBeGreaterThanOrEqual(1);
  });

  test("counters - before the first apply the kernel's absent table reads as empty; once applied, a table deleted by hand is unreadable", async () => {
    // Absent at the start: an earlier test whose close failed would have left its table.
    await topo.node.run(['nft', 'delete', 'table', 'netdev', 'l4fleet'], { allowFailure: true });
    const dp = dataPlane();
    const zero = { packets: 0, bytes: 0 };
    expect(await dp.counters()).toEqual({
      vips: [],
      backends: [],
      drops: { port: zero, 'no-backend': zero, source: zero, fragment: zero },
      flowTable: { entries: 0, fullPackets: 0 },
      icmp: { echoReplied: zero },
    });
    await dp.apply([vipTable({ address: VIP4, port: 80, protocol: 'tcp' })]);
    await topo.node.run(['nft', 'delete', 'table', 'netdev', 'l4fleet']);
    await expect(dp.counters()).rejects.toMatchObject({ code: 'NFT_STATE_UNREADABLE' });
  });

  test("counters - the kernel's absent NAT table reads as empty until an apply writes it and after the apply that removes it; deleted by hand in between, it is unreadable, named", async () => {
    await topo.node.run(['nft', 'delete', 'table', 'inet', 'l4fleet_nat'], { allowFailure: true });
    const before = (await topo.node.run(['sysctl', '-n', 'net.ipv4.ip_forward'])).stdout.trim();
    // A NAT VIP needs the node to forward (NAT_FORWARDING_DISABLED otherwise); this topology's node does not.
    await topo.node.run(['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    try {
      const dp = dataPlane();
      const direct = vipTable({ address: VIP4, port: 80, protocol: 'tcp' });
      const nat: VipTable = {
        ...vipTable({ address: '198.51.100.78', port: 443, protocol: 'tcp' }),
        forwarding: 'nat',
      };
      const natTableThere = async (): Promise<boolean> =>
        (await topo.node.run(['nft', 'list', 'table', 'inet', 'l4fleet_nat'], { allowFailure: true })).code === 0;
      await dp.apply([direct]);
      expect(await natTableThere()).toBe(false);
      expect((await dp.counters()).vips.map((v) => v.vip)).toEqual([`${VIP4}:80/tcp`]);
      await dp.apply([direct, nat]);
      expect((await dp.counters()).vips.map((v) => v.vip).sort()).toEqual([`${VIP4}:80/tcp`, '198.51.100.78:443/tcp']);
      await dp.apply([direct]);
      expect(await natTableThere()).toBe(false);
      expect((await dp.counters()).vips.map((v) => v.vip)).toEqual([`${VIP4}:80/tcp`]);
      await dp.apply([direct, nat]);
      await topo.node.run(['nft', 'delete', 'table', 'inet', 'l4fleet_nat']);
      const err = await dp.counters().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DataPlaneError);
      expect(err).toMatchObject({ code: 'NFT_STATE_UNREADABLE' });
      expect((err as Error).message).toMatch(/inet l4fleet_nat.*No such file or directory/s);
    } finally {
      await topo.node.run(['sysctl', '-qw', `net.ipv4.ip_forward=${before}`]);
    }
  });

  test('full flow table - forwarding degrades to stateless, never drops', async () => {
    const dp = dataPlane({ flowTableSize: 8 });
    const t = vipTable({ address: VIP4, port: 80, protocol: 'udp' });
    await dp.apply([t]);
    await expectLandings(flowsToVip4(60, 35_000, 'udp'), (f) => expected(t, f));
    const c = await dp.counters();
    expect(c.flowTable.entries).toBeLessThanOrEqual(8);
    expect(c.flowTable.fullPackets).toBeGreaterThanOrEqual(50);
  });

  // 3 s, not 1: a loaded CI machine once took over 1 s from the packet to the count (python start, four `nft list`
  // calls), and the entry had expired before it was counted.
  test('flow timeout - idle entries expire after the configured time, not before', async () => {
    const timeoutS = 3;
    const dp = dataPlane({ flowTimeoutUdpS: timeoutS });
    await dp.apply([vipTable({ address: VIP4, port: 80, protocol: 'udp' })]);
    const sentAt = Date.now(); // the one packet leaves after this
    await sendFlows([{ src: CLIENT4, sport: 36_000, dst: VIP4, dport: 80, protocol: 'udp' }]);
    expect((await dp.counters()).flowTable.entries).toBe(1);
    let goneAt = 0;
    for (let i = 0; i < 100 && Date.now() - sentAt < (timeoutS + 4) * 1000; i++) {
      if ((await dp.counters()).flowTable.entries === 0) {
        goneAt = Date.now();
        break;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(goneAt, 'the entry never expired').toBeGreaterThan(0);
    expect(goneAt - sentAt).toBeGreaterThanOrEqual(timeoutS * 1000);
  });

  test('flow re-remembered - a flow whose backend left the pool sticks to its new backend once the old entry idles out', async () => {
    const dp = dataPlane({ flowTimeoutUdpS: 2 });
    const t1 = vipTable({ address: VIP4, port: 80, protocol: 'udp' });
    const x = { src: CLIENT4, sport: 36_100, dst: VIP4, dport: 80, protocol: 'udp' as const };
    const first = expected(t1, x);
    // The pool without x's backend: x is hashed again.
    const pool2 = t1.backends.filter((_b, i) => i !== first);
    const t2: VipTable = { ...t1, backends: pool2, slots: buildTable(pool2) };
    const second = t1.backends.indexOf(pool2[expected(t2, x)] as VipTable['backends'][number]);
    // Then x's slot moves to the pool's other backend: x must stay where it is.
    const slots3 = Int32Array.from(t2.slots);
    const slot = slotOf(x, t2.slots.length, t2.seed, t2.hash);
    slots3[slot] = 1 - (slots3[slot] as number);
    const t3: VipTable = { ...t2, slots: slots3 };
    const landed = async (): Promise<number[] | undefined> => {
      await clearRecorders(topo.backends);
      await sendFlows([x]);
      return (await landings()).get(flowKey(x));
    };
    await dp.apply([t1]);
    expect(await landed()).toEqual([first]);
    await dp.apply([t2]);
    // x keeps sending (well within the 2 s idle timeout); its old entry, to a backend no longer in the
    // pool, is not refreshed by that, so it expires and x is remembered with its new backend.
    const until = performance.now() + 3_000;
    for (let i = 0; i < 20 && performance.now() < until; i++) expect(await landed()).toEqual([second]);
    await dp.apply([t3]);
    expect(await landed()).toEqual([second]);
  });

  test.each(ON_MEMBER_DOWN_CASES)(ON_MEMBER_DOWN_TITLE, (mode, vip) =>
    onMemberDownCase(topo, dataPlane(), vipTable, mode, vip),
  );

  // How long a delta takes (the issue's 50 ms) is the bench's to say: `npm run bench -w @l4fleet/dataplane`, the apply
  // table and its target line. These tests assert what a delta does.
  test('delta - one backend leaving a 50-backend pool at M = 65,537 is a delta (no new table) and keeps the flow map', async () => {
    const dp = dataPlane();
    const names = Array.from({ length: 50 }, (_x, i) => ({ name: `m${i}`, address: `198.18.72.${100 + i}`, port: 80 }));
    const full: VipTable = {
      vip: { address: VIP4, port: 80, protocol: 'tcp' },
      hash: '5-tuple',
      seed: SEED,
      backends: names,
      slots: buildTable(names),
    };
    const less = names.slice(1);
    const smaller: VipTable = { ...full, backends: less, slots: buildTable(less) };
    expect((await dp.apply([full])).tableCreated).toBe(true);
    await sendFlows(
      Array.from({ length: 20 }, (_x, i) => ({
        src: CLIENT4,
        sport: 37_000 + i,
        dst: VIP4,
        dport: 80,
        protocol: 'tcp' as const,
      })),
    );
    const before = (await dp.counters()).flowTable.entries;
    for (let i = 0; i < 3; i++) {
      const r = await dp.apply([i % 2 === 0 ? smaller : full]);
      expect(r.tableCreated).toBe(false);
      expect(r.slotsChanged).toBeGreaterThan(1000);
      expect(r.slotsChanged).toBeLessThan(2000);
    }
    expect(before).toBe(20);
    expect((await dp.counters()).flowTable.entries).toBe(before);
  });

  test('delta - one of 4 and one of 2 backends leaving at M = 65,537 (a quarter, half of the slots) are deltas by the netlink writer, and traffic follows', async () => {
    const dp = dataPlane({ deltaWriter: 'netlink', foldDelayMs: 100 });
    const folded = async (): Promise<void> => {
      // The overlay of the previous change folds after 100 ms quiet, in 2,048-slot steps.
      await new Promise((r) => setTimeout(r, 600));
    };
    const pool = (t: VipTable, n: number): VipTable => {
      const backends = t.backends.slice(0, n);
      return { ...t, backends, slots: buildTable(backends) };
    };
    const four = vipTable({ address: VIP4, port: 80, protocol: 'tcp', backends: 4 });
    const three = pool(four, 3);
    for (const [all, fewer, share] of [
      [four, three, 4],
      [pool(four, 2), pool(four, 1), 2],
    ] as const) {
      await dp.apply([all]);
      await folded();
      for (let i = 0; i < 3; i++) {
        const r = await dp.apply([i % 2 === 0 ? fewer : all]);
        expect(r.tableCreated).toBe(false);
        expect(r.slotsChanged).toBeGreaterThan(65_537 / share - 500);
        expect(r.backendsRemoved + r.backendsAdded).toBe(1);
        await folded();
      }
    }
    // Traffic follows the new table.
    await dp.apply([three]);
    await expectLandings(flowsToVip4(40, 41_000, 'tcp', clientSource4), (f) => expected(three, f));
  });

  test('delta writers - netlink (l4fleet-nft-batch) and nft leave the kernel in the same state', async () => {
    const listing = async (table: string): Promise<string> =>
      (await topo.node.run(['nft', 'list', 'table', 'netdev', table])).stdout
        .replaceAll(table, 'T')
        .replace(/packets \d+ bytes \d+/g, 'packets - bytes -');
    const macs = await Promise.all([0, 1, 2].map(macOf));
    const steps: VipTable[][] = [];
    const v4 = vipTable({ address: VIP4, port: 80, protocol: 'tcp', size: 4093, macs });
    const v6 = vipTable({ address: VIP6, port: 53, protocol: 'udp', size: 4093, hash: 'source-ip' });
    const drop = (t: VipTable, i: number): VipTable => {
      const backends = t.backends.filter((_b, j) => j !== i);
      return { ...t, backends, slots: buildTable(backends, t.slots.length) };
    };
    steps.push([v4, v6], [drop(v4, 1), v6], [drop(v4, 1), drop(v6, 0)], [v4, drop(v6, 0)], [v4, v6]);
    // Folding is timed, so it is kept out of the comparison (the fold test covers it).
    const viaNft = dataPlane({ deltaWriter: 'nft', tableName: 'l4nft', foldDelayMs: 3_600_000 });
    const viaNetlink = dataPlane({ deltaWriter: 'netlink', tableName: 'l4nl', foldDelayMs: 3_600_000 });
    for (const desired of steps) {
      const a = await viaNft.apply(desired);
      const b = await viaNetlink.apply(desired);
      expect(b.slotsChanged).toBe(a.slotsChanged);
      expect(await listing('l4nl')).toBe(await listing('l4nft'));
    }
  });

  test('l4fleet-nft-batch - a batch of 8,000 messages and 5,000 names gets all its answers', async () => {
    await topo.node.run(['nft', '-f', '-'], {
      input: 'table netdev l4many {\n  map a { type mark : mark; }\n  map b { type mark : mark; }\n}\n',
    });
    try {
      // Alternating sets: every element is a message of its own.
      // (The receive buffer is sized to the batch; the names table grows.)
      const lines: string[] = [];
      for (let i = 0; i < 3000; i++) lines.push(`add ${i % 2 === 0 ? 'a' : 'b'} ${i}=${i}`);
      for (let i = 0; i < 5000; i++) lines.push(`add-counter c${i}`);
      const r = await topo.node.run([NFT_BATCH_PATH, 'netdev', 'l4many'], { input: `${lines.join('\n')}\ncommit\n` });
      expect(r.stdout.trim()).toBe('ok 8000');
      const counters = await topo.node.run(['nft', '-j', 'list', 'counters', 'table', 'netdev', 'l4many']);
      expect((JSON.parse(counters.stdout).nftables as { counter?: unknown }[]).filter((o) => o.counter).length).toBe(
        5000,
      );
      const listed = await topo.node.run(['nft', '-j', 'list', 'map', 'netdev', 'l4many', 'b']);
      expect((JSON.parse(listed.stdout).nftables[1].map.elem as unknown[]).length).toBe(1500);
    } finally {
      await topo.node.run(['nft', 'delete', 'table', 'netdev', 'l4many'], { allowFailure: true });
    }
  });

  test('delta writers - a refused netlink batch changes nothing and the next apply recovers', async () => {
    const dp = dataPlane({ deltaWriter: 'netlink', tableName: 'l4nlfail', foldDelayMs: 3_600_000 });
    const t = vipTable({ address: VIP4, port: 80, protocol: 'tcp', size: 4093 });
    await dp.apply([t]);
    const key = 'v_c633644d_tcp_80';
    const moved = (slot: number, by: number): VipTable => {
      const slots = Int32Array.from(t.slots);
      slots[slot] = ((slots[slot] as number) + by) % BACKENDS;
      return { ...t, slots };
    };
    await dp.apply([moved(5, 1)]); // slot 5 is now in the overlay
    // Someone removes it behind the driver's back; a delta that replaces it (delete + add) is refused.
    await topo.node.run(['nft', 'delete', 'element', 'netdev', 'l4nlfail', `${key}_over`, '{ 5 }']);
    const listing = async (): Promise<string> =>
      (await topo.node.run(['nft', 'list', 'table', 'netdev', 'l4nlfail'])).stdout.replace(
        /packets \d+ bytes \d+/g,
        '',
      );
    const before = await listing();
    const err = await dp.apply([moved(5, 2)]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DataPlaneError);
    expect((err as DataPlaneError).code).toBe('NFT_FAILED');
    expect((err as DataPlaneError).message).toMatch(/_over.*No such file or directory/);
    expect(await listing()).toBe(before);
    // The driver reads the kernel again and writes the slot.
    const again = await dp.apply([moved(5, 2)]);
    expect(again.slotsChanged).toBe(1);
    expect((await dp.apply([moved(5, 2)])).transactions).toBe(0);
    // A killed l4fleet-nft-batch is started again on the next apply.
    const pattern = 'l4fleet-nft-batch netdev l4nlfail';
    expect(spawnSync('pkill', ['-f', pattern]).status).toBe(0);
    for (let i = 0; i < 100 && spawnSync('pgrep', ['-f', pattern]).status === 0; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    await new Promise((r) => setTimeout(r, 50));
    expect((await dp.apply([t])).slotsChanged).toBe(1);
  });

  test('fold - after a quiet time the overlay moves into the slot map; flows land the same before and after', async () => {
    const dp = dataPlane({ foldDelayMs: 300 });
    const t1 = vipTable({ address: VIP4, port: 80, protocol: 'udp', size: 4093 });
    const pool = t1.backends.slice(1);
    const t2: VipTable = { ...t1, backends: pool, slots: buildTable(pool, 4093) };
    const key = 'v_c633644d_udp_80';
    const count = async (map: string): Promise<number> => {
      const r = await topo.node.run(['nft', '-j', 'list', 'map', 'netdev', 'l4fleet', map]);
      const m = (JSON.parse(r.stdout).nftables as { map?: { elem?: unknown[] } }[]).find((o) => o.map);
      return m?.map?.elem?.length ?? 0;
    };
    await dp.apply([t1]);
    await dp.apply([t2]);
    // A third of the slots moved: all in the overlay, the slot map untouched.
    const over = await count(`${key}_over`);
    expect(over).toBeGreaterThan(1000);
    // The new backend of each flow, as an index into the topology's backends.
    const want = (f: Flow): number => t1.backends.indexOf(t2.backends[expected(t2, f)] as VipTable['backends'][number]);
    await expectLandings(flowsToVip4(60, 42_000, 'udp', clientSource4), want);
    for (let i = 0; i < 100 && (await count(`${key}_over`)) > 0; i++) await new Promise((r) => setTimeout(r, 100));
    expect(await count(`${key}_over`)).toBe(0);
    expect(await count(`${key}_slots`)).toBe(4093);
    await expectLandings(flowsToVip4(60, 43_000, 'udp', clientSource4), want);
    // The driver's copy followed the fold: the same table again is no transaction.
    expect((await dp.apply([t2])).transactions).toBe(0);
  });

  test('restart - a new driver over the same kernel state changes nothing, then applies only the delta', async () => {
    const tables = [
      vipTable({ address: VIP4, port: 80, protocol: 'tcp' }),
      vipTable({ address: VIP6, port: 53, protocol: 'udp', hash: 'source-ip' }),
    ];
    const first = dataPlane();
    await first.apply(tables);
    await sendFlows([{ src: CLIENT4, sport: 38_000, dst: VIP4, dport: 80, protocol: 'tcp' }]);
    await first.close();
    const handles = await topo.node.run(['nft', '-a', '-t', 'list', 'table', 'netdev', 'l4fleet']);

    const second = dataPlane();
    const again = await second.apply(tables);
    expect(again.transactions).toBe(0);
    expect(again.vips.map((v) => v.action)).toEqual(['unchanged', 'unchanged']);
    expect((await topo.node.run(['nft', '-a', '-t', 'list', 'table', 'netdev', 'l4fleet'])).stdout).toBe(
      handles.stdout,
    );
    expect((await second.counters()).flowTable.entries).toBe(1);

    const t0 = tables[0] as VipTable;
    const slots = Int32Array.from(t0.slots);
    slots[7] = ((slots[7] as number) + 1) % BACKENDS;
    const delta = await second.apply([{ ...t0, slots }, tables[1] as VipTable]);
    expect(delta.slotsChanged).toBe(1);
    expect(delta.vips.map((v) => v.action)).toEqual(['updated', 'unchanged']);
    // Removing a VIP takes its chain, map and counter, and nothing else.
    const removed = await second.apply([tables[1] as VipTable]);
    expect(removed.vips.map((v) => v.action)).toEqual(['unchanged', 'removed']);
    const listing = (await topo.node.run(['nft', '-t', 'list', 'table', 'netdev', 'l4fleet'])).stdout;
    expect(listing).not.toContain('v_c633644d_tcp_80');
  });

  test('upgrade - a table from before the fragment rules (6 ingress rules, no drop_fragment), or from before the VLAN rule (8), gets its ingress chain in place: flows kept, no new table; a restart over it writes nothing', async () => {
    const tables = [vipTable({ address: VIP4, port: 80, protocol: 'udp' })];
    const first = dataPlane();
    await first.apply(tables);
    await sendFlows([{ src: CLIENT4, sport: 38_100, dst: VIP4, dport: 80, protocol: 'udp' }]);
    await first.close();
    // The ingress chain as the version before wrote it.
    const hostV4 = 'meta pkttype host ip';
    const hostV6 = 'meta pkttype host ip6';
    const previous = [
      `${hostV4} daddr . meta l4proto . th dport vmap @vips4`,
      `${hostV6} daddr . meta l4proto . th dport vmap @vips6`,
      `${hostV4} frag-off & 0x3fff == 0 icmp type echo-request ip daddr vmap @echo4`,
      `${hostV6} nexthdr 58 icmpv6 type echo-request ip6 daddr vmap @echo6`,
      `${hostV4} daddr @vipaddrs4 counter name "drop_port" drop`,
      `${hostV6} daddr @vipaddrs6 counter name "drop_port" drop`,
    ];
    const script = [
      'flush chain netdev l4fleet ingress',
      'delete counter netdev l4fleet drop_fragment',
      ...previous.map((r) => `add rule netdev l4fleet ingress ${r}`),
    ];
    await topo.node.run(['nft', '-f', '-'], { input: `${script.join('\n')}\n` });
    const list = async (): Promise<string> =>
      (await topo.node.run(['nft', '-t', 'list', 'table', 'netdev', 'l4fleet'])).stdout.replace(
        /packets \d+ bytes \d+/g,
        '',
      );
    expect(await list()).not.toContain('drop_fragment');

    const second = dataPlane();
    const upgraded = await second.apply(tables);
    expect(upgraded).toMatchObject({ tableCreated: false, transactions: 1, slotsChanged: 0 });
    expect((await second.counters()).flowTable.entries).toBe(1);
    const text = await list();
    expect(text).toContain('counter drop_fragment {');
    expect(text).toContain('ip6 daddr . ip6 nexthdr . th dport vmap @vips6');
    expect(text.match(/counter name "drop_fragment" drop/g)).toHaveLength(2);
    await second.close();

    const again = await dataPlane().apply(tables);
    expect(again.transactions).toBe(0);
    expect(await list()).toBe(text);
    await (open.at(-1) as DataPlane).close();

    // A table from the version before the VLAN rule: its ingress chain had the fragment rules but not the first one.
    const vlanRule = /^\s*ether type \{ 8021q, 8021ad \} .*accept\n/m;
    expect(text).toMatch(vlanRule);
    const beforeVlan = [
      `${hostV4} frag-off & 0x3fff == 0 ip daddr . meta l4proto . th dport vmap @vips4`,
      `${hostV6} daddr . ip6 nexthdr . th dport vmap @vips6`,
      ...previous.slice(2, 4),
      `${hostV4} frag-off & 0x3fff != 0 ip daddr @vipaddrs4 counter name "drop_fragment" drop`,
      `${hostV6} nexthdr 44 ip6 daddr @vipaddrs6 counter name "drop_fragment" drop`,
      ...previous.slice(4),
    ];
    await topo.node.run(['nft', '-f', '-'], {
      input: `${['flush chain netdev l4fleet ingress', ...beforeVlan.map((r) => `add rule netdev l4fleet ingress ${r}`)].join('\n')}\n`,
    });
    expect(await list()).not.toMatch(vlanRule);
    const third = dataPlane();
    expect(await third.apply(tables)).toMatchObject({ tableCreated: false, transactions: 1, slotsChanged: 0 });
    expect((await third.counters()).flowTable.entries).toBe(1);
    expect(await list()).toBe(text);
    await third.close();
    expect((await dataPlane().apply(tables)).transactions).toBe(0);
    expect(await list()).toBe(text);
  }, 120_000);

  test('restart - elements deleted by hand (a VIP jump, its address, its echo element) are written again, and traffic comes back', async () => {
    const t = vipTable({ address: VIP4, port: 80, protocol: 'udp' });
    const first = dataPlane();
    await first.apply([t]);
    await first.close();
    const hand = [
      ['delete', 'element', 'netdev', 'l4fleet', 'vips4', `{ ${VIP4} . udp . 80 }`],
      ['delete', 'element', 'netdev', 'l4fleet', 'vipaddrs4', `{ ${VIP4} }`],
      ['delete', 'element', 'netdev', 'l4fleet', 'echo4', `{ ${VIP4} }`],
    ];
    for (const argv of hand) await topo.node.run(['nft', ...argv]);
    const second = dataPlane();
    const repaired = await second.apply([t]);
    expect(repaired.vips.map((v) => v.action)).toEqual(['updated']);
    expect((await second.apply([t])).transactions).toBe(0);
    const listing = (await topo.node.run(['nft', 'list', 'table', 'netdev', 'l4fleet'])).stdout;
    expect(listing).toContain(`${VIP4} . udp . 80 : jump v_c633644d_udp_80`);
    await expectLandings(flowsToVip4(20, 39_000, 'udp'), (f) => expected(t, f));
    // A VIP whose jump is gone is removed without it (deleting a missing element would refuse the transaction).
    await topo.node.run(['nft', ...(hand[0] as string[])]);
    const third = dataPlane();
    expect((await third.apply([])).vips.map((v) => v.action)).toEqual(['removed']);
  });

  test('verify - a jump element deleted by hand under a running driver is written back, and traffic comes back', async () => {
    const t = vipTable({ address: VIP4, port: 80, protocol: 'udp' });
    // The driver's warnings: the light read's `driftFound` says it took real nft output for a difference.
    const warned: { event?: string; drift?: string }[] = [];
    const dp = dataPlane({
      logger: pino({ level: 'warn' }, { write: (line: string) => warned.push(JSON.parse(line)) }),
    });
    await dp.apply([t]);
    // Nothing to repair: verify's light read (the skeleton, the per-VIP routing maps, no slot map's elements) and the
    // NAT table's listing, nothing written. Its cost, for the README (not asserted): ~1 s per 65,537-slot VIP when it
    // read the table whole.
    const runs: number[] = [];
    for (let i = 0; i < 3; i++) {
      const started = performance.now();
      expect((await dp.verify()).transactions).toBe(0);
      runs.push(Math.round(performance.now() - started));
    }
    console.log(`verify (light read), nothing to repair, 1 VIP of 65,537 slots: ${runs.join(', ')} ms`);
    expect(warned.filter((w) => w.event === 'driftFound')).toEqual([]);
    await topo.node.run(['nft', 'delete', 'element', 'netdev', 'l4fleet', 'vips4', `{ ${VIP4} . udp . 80 }`]);
    // The driver's model still holds the element: an apply of the same state sees nothing to do.
    expect((await dp.apply([t])).transactions).toBe(0);
    const started = performance.now();
    const repaired = await dp.verify();
    console.log(
      `verify, one jump element to repair (light read, then the full read): ${Math.round(performance.now() - started)} ms`,
    );
    expect(repaired.transactions).toBe(1);
    expect(repaired.vips.map((v) => v.action)).toEqual(['updated']);
    expect(warned.find((w) => w.event === 'driftFound')?.drift).toContain('vips4');
    const listing = (await topo.node.run(['nft', 'list', 'map', 'netdev', 'l4fleet', 'vips4'])).stdout;
    expect(listing).toContain(`${VIP4} . udp . 80 : jump v_c633644d_udp_80`);
    await expectLandings(flowsToVip4(20, 39_500, 'udp'), (f) => expected(t, f));
    expect((await dp.verify()).transactions).toBe(0);
  }, 120_000);

  // A VIP blackholed by hand (`: drop`): the element is there with another verdict. The driver added its jump on top
  // of it, which the kernel refused (File exists) with the whole transaction, at every verify, apply and restart.
  test('verify, restart - a jump element rewritten by hand to drop is written again (deleted first), and traffic comes back; removed with it, the VIP goes', async () => {
    const t = vipTable({ address: VIP4, port: 80, protocol: 'udp', size: 251 });
    const element = `{ ${VIP4} . udp . 80 }`;
    const blackhole = async (): Promise<void> => {
      await topo.node.run(['nft', 'delete', 'element', 'netdev', 'l4fleet', 'vips4', element]);
      await topo.node.run(['nft', 'add', 'element', 'netdev', 'l4fleet', 'vips4', `{ ${VIP4} . udp . 80 : drop }`]);
    };
    const vips4 = async (): Promise<string> =>
      (await topo.node.run(['nft', 'list', 'map', 'netdev', 'l4fleet', 'vips4'])).stdout;
    const dp = dataPlane();
    await dp.apply([t]);
    await blackhole();
    expect(await vips4()).toContain(`${VIP4} . udp . 80 : drop`);
    const repaired = await dp.verify();
    expect(repaired.transactions).toBe(1);
    expect(repaired.vips.map((v) => v.action)).toEqual(['updated']);
    expect(await vips4()).toContain(`${VIP4} . udp . 80 : jump v_c633644d_udp_80`);
    await expectLandings(flowsToVip4(20, 39_600, 'udp'), (f) => expected(t, f));
    expect((await dp.verify()).transactions).toBe(0);
    await dp.close();
    // Restart over it: the first apply writes it again.
    await blackhole();
    const second = dataPlane();
    expect((await second.apply([t])).vips.map((v) => v.action)).toEqual(['updated']);
    expect(await vips4()).toContain(`${VIP4} . udp . 80 : jump v_c633644d_udp_80`);
    expect((await second.apply([t])).transactions).toBe(0);
    await second.close();
    // Removed while rewritten: deleted by key (left, the element would be there without its VIP).
    await blackhole();
    const third = dataPlane();
    expect((await third.apply([])).vips.map((v) => v.action)).toEqual(['removed']);
    expect(await vips4()).not.toContain(VIP4);
  }, 60_000);

  // No rule names flows4_udp while the node has TCP VIPs only: it can be deleted by hand. It was found missing at every
  // verify (a full read each time) and never declared again, and the first UDP VIP was refused at every apply.
  test('verify - a flow map no rule named, deleted by hand, is declared again, and a UDP VIP added after it is served', async () => {
    const tcp = vipTable({ address: VIP4, port: 80, protocol: 'tcp', size: 251 });
    const udp = vipTable({ address: VIP4, port: 80, protocol: 'udp', size: 251 });
    const dp = dataPlane();
    await dp.apply([tcp]);
    await topo.node.run(['nft', 'delete', 'map', 'netdev', 'l4fleet', 'flows4_udp']);
    expect((await dp.verify()).transactions).toBe(1);
    expect((await dp.verify()).transactions).toBe(0);
    await dp.apply([tcp, udp]);
    await expectLandings(flowsToVip4(20, 39_650, 'udp'), (f) => expected(udp, f));
  }, 60_000);

  // A VIP chain is known by its counter rule's comment (the signature): with a rule deleted by hand (the slot-map
  // lookup here) it still had it, and verify and a restart found nothing while every new flow the overlay did not hold
  // was dropped. Its rules are counted now: every shape must read back with the number written.
  test('restart, verify - VIP chains of every shape read back as written; one missing a rule deleted by hand is written again, and traffic comes back', async () => {
    const key = 'v_c633644d_udp_80';
    const udp = vipTable({ address: VIP4, port: 80, protocol: 'udp', size: 251 });
    const shapes: VipTable[] = [
      udp,
      {
        ...vipTable({ address: VIP4, port: 81, protocol: 'tcp', size: 251 }),
        onMemberDown: 'reselect',
        sourceRanges: ['10.0.0.0/8', '198.18.4.0/24'],
      },
      {
        ...vipTable({ address: VIP6, port: 80, protocol: 'udp', size: 251, hash: 'source-ip' }),
        onMemberDown: 'reselect',
      },
      {
        ...vipTable({ address: VIP6, port: 81, protocol: 'tcp', size: 251 }),
        draining: true,
        sourceRanges: ['2001:db8::/32'],
      },
    ];
    const warned: { event?: string; drift?: string }[] = [];
    const warnings = pino({ level: 'warn' }, { write: (line: string) => warned.push(JSON.parse(line)) });
    const first = dataPlane({ logger: warnings });
    await first.apply(shapes);
    expect((await first.verify()).transactions).toBe(0);
    await first.close();
    const second = dataPlane({ logger: warnings });
    const again = await second.apply(shapes);
    expect(again.transactions).toBe(0);
    expect(again.vips.map((v) => v.rulesReplaced)).toEqual([false, false, false, false]);
    expect((await second.verify()).transactions).toBe(0);
    expect(warned.filter((w) => w.event === 'driftFound')).toEqual([]);
    const deleteLookup = async (): Promise<void> => {
      const chain = (await topo.node.run(['nft', '-a', 'list', 'chain', 'netdev', 'l4fleet', key])).stdout;
      const handle = /_slots.* # handle (\d+)$/m.exec(chain)?.[1];
      expect(handle).toBeDefined();
      await topo.node.run(['nft', 'delete', 'rule', 'netdev', 'l4fleet', key, 'handle', handle as string]);
    };
    await deleteLookup();
    const repaired = await second.verify();
    expect(repaired.transactions).toBe(1);
    expect(repaired.vips.find((v) => v.vip === `${VIP4}:80/udp`)).toMatchObject({
      action: 'updated',
      rulesReplaced: true,
    });
    expect(warned.find((w) => w.event === 'driftFound')?.drift).toContain(key);
    await expectLandings(flowsToVip4(20, 39_660, 'udp'), (f) => expected(udp, f));
    expect((await second.verify()).transactions).toBe(0);
    await second.close();
    // Deleted again under no driver: a restart's first apply writes the chain again.
    await deleteLookup();
    const third = dataPlane();
    const restarted = await third.apply(shapes);
    expect(restarted.vips.map((v) => v.rulesReplaced)).toEqual([true, false, false, false]);
    await expectLandings(flowsToVip4(20, 39_680, 'udp'), (f) => expected(udp, f));
  }, 90_000);

  test('verify - the netdev table deleted by hand is created again', async () => {
    const t = vipTable({ address: VIP4, port: 80, protocol: 'udp', size: 251 });
    const dp = dataPlane();
    await dp.apply([t]);
    await topo.node.run(['nft', 'delete', 'table', 'netdev', 'l4fleet']);
    const repaired = await dp.verify();
    expect(repaired.tableCreated).toBe(true);
    expect(repaired.transactions).toBeGreaterThan(0);
    await expectLandings(flowsToVip4(20, 39_700, 'udp'), (f) => expected(t, f));
    expect((await dp.verify()).transactions).toBe(0);
  }, 60_000);

  test('verify - the ingress chain and a VIP chain flushed by hand are written again', async () => {
    const t = vipTable({ address: VIP4, port: 80, protocol: 'udp', size: 251 });
    const dp = dataPlane();
    await dp.apply([t]);
    await topo.node.run(['nft', 'flush', 'chain', 'netdev', 'l4fleet', 'ingress']);
    await topo.node.run(['nft', 'flush', 'chain', 'netdev', 'l4fleet', 'v_c633644d_udp_80']);
    expect((await dp.apply([t])).transactions).toBe(0);
    const repaired = await dp.verify();
    expect(repaired.transactions).toBe(1);
    expect(repaired.vips.map((v) => v.action)).toEqual(['updated']);
    await expectLandings(flowsToVip4(20, 39_800, 'udp'), (f) => expected(t, f));
    expect((await dp.verify()).transactions).toBe(0);
  }, 60_000);

  describe('a VIP chain and its jump deleted by hand, its maps, set and counter left', () => {
    const key = 'v_c633644d_udp_80';
    /** t: b0, b1, b2; t2: b1, b2. */
    const tables = (size: number): { t: VipTable; t2: VipTable; want2: (f: Flow) => number } => {
      const t = vipTable({ address: VIP4, port: 80, protocol: 'udp', size });
      const pool = t.backends.slice(1);
      const t2: VipTable = { ...t, backends: pool, slots: buildTable(pool, size) };
      // Where a flow to t2 belongs, as an index into the topology's backends (b0 is not in t2's pool).
      const want2 = (f: Flow): number => t.backends.indexOf(t2.backends[expected(t2, f)] as (typeof pool)[number]);
      return { t, t2, want2 };
    };
    const handEdit = async (): Promise<void> => {
      await topo.node.run(['nft', 'delete', 'element', 'netdev', 'l4fleet', 'vips4', `{ ${VIP4} . udp . 80 }`]);
      await topo.node.run(['nft', 'delete', 'chain', 'netdev', 'l4fleet', key]);
    };
    const objects = async (): Promise<string[]> => {
      const r = await topo.node.run(['nft', '-t', 'list', 'table', 'netdev', 'l4fleet']);
      return [...r.stdout.matchAll(/^\t(?:map|set|counter) (v_\S+) \{$/gm)].map((m) => m[1] as string);
    };

    test('verify - leftover maps holding another slot map (each of its 65,537 elements refused the apply) are replaced, and traffic comes back', async () => {
      const { t, t2, want2 } = tables(65_537);
      const dp = dataPlane();
      await dp.apply([t]);
      // t2 moves b0's slots to the overlay: the leftover slot map is t's, the overlay holds t2's changes.
      await dp.apply([t2]);
      await handEdit();
      const repaired = await dp.verify();
      expect(repaired.vips.map((v) => v.action)).toEqual(['added']);
      await expectLandings(flowsToVip4(40, 44_000, 'udp', clientSource4), want2);
      expect((await dp.verify()).transactions).toBe(0);
      // Its counter stays (it counts on); one of each map and set.
      expect((await objects()).sort()).toEqual([key, `${key}_live`, `${key}_over`, `${key}_slots`]);
    }, 60_000);

    test("restart - leftover maps holding the same slot map: their overlay elements go too (they took b0's flows, which left the pool); a VIP no longer desired loses them all", async () => {
      const { t, t2, want2 } = tables(251);
      const first = dataPlane();
      await first.apply([t2]);
      // Back to t: b0's slots go to the overlay, over the slot map of t2.
      await first.apply([t]);
      await first.close();
      await handEdit();
      const second = dataPlane();
      expect((await second.apply([t2])).vips.map((v) => v.action)).toEqual(['added']);
      await expectLandings(flowsToVip4(40, 44_100, 'udp', clientSource4), want2);
      expect((await second.verify()).transactions).toBe(0);
      await second.close();
      // Left by hand again, and the VIP removed from the desired state: nothing of it stays.
      await handEdit();
      expect((await dataPlane().apply([])).transactions).toBe(1);
      expect(await objects()).toEqual([]);
    }, 60_000);
  });

  describe('a VIP chain flushed by hand, then one of its maps, its set or its counter deleted (no rule named it any more)', () => {
    const key = 'v_c633644d_udp_80';
    const otherKey = 'v_c633644d_tcp_80';
    const label = `${VIP4}:80/udp`;
    /** t and t2 differ in seed only: the same slot map, other rules, so a flow remembered under t may hash elsewhere. */
    const t = vipTable({ address: VIP4, port: 80, protocol: 'udp', size: 251 });
    const t2: VipTable = { ...t, seed: SEED + 1 };
    const other = vipTable({ address: VIP4, port: 80, protocol: 'tcp', size: 251 });
    /** Flow entries outlive the test (the 30 s default could expire some between two listings). */
    const dataPlaneLongFlows = (): DataPlane => dataPlane({ flowTimeoutUdpS: 600 });
    const nftText = async (...args: string[]): Promise<string> =>
      (await topo.node.run(['nft', ...args])).stdout.replace(/ expires \S+/g, '');
    /** What the repair must leave as it is: the flow maps' elements (not their expiry) and the other VIP. */
    const untouched = async (): Promise<string[]> =>
      Promise.all([
        nftText('list', 'map', 'netdev', 'l4fleet', 'flows4_udp'),
        nftText('list', 'map', 'netdev', 'l4fleet', 'flows4_tcp'),
        nftText('list', 'chain', 'netdev', 'l4fleet', otherKey),
        nftText('list', 'map', 'netdev', 'l4fleet', `${otherKey}_slots`),
        nftText('list', 'map', 'netdev', 'l4fleet', `${otherKey}_over`),
        nftText('list', 'set', 'netdev', 'l4fleet', `${otherKey}_live`),
      ]);
    /** Flushes the VIP's chain (so no rule names its objects), then deletes each of `objects` (`kind name`). */
    const handEdit = async (objects: readonly string[]): Promise<void> => {
      await topo.node.run(['nft', 'flush', 'chain', 'netdev', 'l4fleet', key]);
      for (const o of objects)
        await topo.node.run(['nft', 'delete', ...o.split(' ', 1), 'netdev', 'l4fleet', o.split(' ')[1] as string]);
    };
    const packets = async (dp: DataPlane): Promise<number> =>
      (await dp.counters()).vips.find((v) => v.vip === label)?.packets ?? -1;
    const remembered = flowsToVip4(40, 45_000, 'udp', clientSource4);
    const fresh = flowsToVip4(40, 45_100, 'udp', clientSource4);

    /** Flows remembered under t, then t2 written (rules only): the state each case edits by hand. */
    async function written(dp: DataPlane): Promise<number> {
      await dp.apply([t, other]);
      await expectLandings(remembered, (f) => expected(t, f));
      expect((await dp.apply([t2, other])).vips.map((v) => v.action)).toEqual(['updated', 'unchanged']);
      // Some of them hash elsewhere under t2: their landing below shows the flow map kept them.
      expect(remembered.filter((f) => expected(t, f) !== expected(t2, f)).length).toBeGreaterThan(10);
      return packets(dp);
    }

    /** After the repair: remembered flows where they were, new ones by t2, nothing else changed. */
    async function expectRepaired(before: string[]): Promise<void> {
      expect(await untouched()).toEqual(before);
      await clearRecorders(topo.backends);
      await expectLandings(remembered, (f) => expected(t, f));
      await expectLandings(fresh, (f) => expected(t2, f));
    }

    test.each([
      ['map', `${key}_slots`],
      ['map', `${key}_over`],
      ['set', `${key}_live`],
      ['counter', key],
    ])(
      'verify - chain flushed and its %s %s deleted: written again, its flows and the other VIP untouched',
      async (kind, name) => {
        const dp = dataPlaneLongFlows();
        const counted = await written(dp);
        expect(counted).toBeGreaterThanOrEqual(remembered.length);
        const before = await untouched();
        await handEdit([`${kind} ${name}`]);
        const repaired = await dp.verify();
        expect(repaired.vips.map((v) => v.action)).toEqual(['updated', 'unchanged']);
        await expectRepaired(before);
        expect((await dp.verify()).transactions).toBe(0);
        // A counter kept counts on; one deleted counts from the repair.
        const now = await packets(dp);
        if (kind === 'counter') expect(now).toBeLessThan(counted + remembered.length + fresh.length);
        else expect(now).toBeGreaterThanOrEqual(counted + remembered.length + fresh.length);
      },
      60_000,
    );

    test('restart - chain flushed, its slot map and counter deleted: a new driver writes them again at its first apply', async () => {
      const first = dataPlaneLongFlows();
      await written(first);
      await first.close();
      const before = await untouched();
      await handEdit([`map ${key}_slots`, `counter ${key}`]);
      const second = dataPlaneLongFlows();
      expect((await second.apply([t2, other])).vips.map((v) => v.action)).toEqual(['updated', 'unchanged']);
      await expectRepaired(before);
      expect((await second.verify()).transactions).toBe(0);
    }, 60_000);
  });

  test('restart - a backend removed before it keeps its id: a new backend after the restart gets another, and it gets its own back', async () => {
    const ids = async (): Promise<Map<string, number>> => {
      const r = await topo.node.run(['nft', '-j', 'list', 'map', 'netdev', 'l4fleet', 'backends4']);
      const map = (JSON.parse(r.stdout).nftables as { map?: { elem?: [number, string][] } }[]).find((o) => o.map);
      return new Map((map?.map?.elem ?? []).map(([id, address]) => [address, id]));
    };
    const t = vipTable({ address: VIP4, port: 80, protocol: 'udp' });
    const without = (t: VipTable, i: number): VipTable => {
      const backends = t.backends.filter((_b, j) => j !== i);
      return { ...t, backends, slots: buildTable(backends, t.slots.length) };
    };
    const first = dataPlane();
    await first.apply([t]);
    const before = await ids();
    expect(before.size).toBe(3);
    await first.apply([without(t, 2)]);
    await first.close(); // a restart: the kernel state stays

    const second = dataPlane();
    // A backend the kernel never had (no traffic is sent to it): before the fix it took the retired backend's id.
    const newcomer = { name: 'b9', address: '198.18.74.99', port: 80 };
    const two = without(t, 2);
    await second.apply([
      { ...two, backends: [...two.backends, newcomer], slots: buildTable([...two.backends, newcomer], t.slots.length) },
    ]);
    const after = await ids();
    const retiredId = before.get(backend4(2)) as number;
    expect(retiredId).toBeGreaterThan(0);
    expect(after.get(backend4(2))).toBe(retiredId); // kept in the kernel while retired
    expect(after.get(newcomer.address)).toBeGreaterThan(Math.max(...before.values()));
    await second.apply([t]);
    expect((await ids()).get(backend4(2))).toBe(retiredId);
    // and it serves again under that id
    await expectLandings(flowsToVip4(20, 38_500, 'udp'), (f) => expected(t, f));
  });

  test('bad desired state - typed errors, and the previous state stays', async () => {
    const dp = dataPlane();
    const good = vipTable({ address: VIP4, port: 80, protocol: 'tcp' });
    await dp.apply([good]);
    const before = (await topo.node.run(['nft', 'list', 'table', 'netdev', 'l4fleet'])).stdout;
    const wrongFamily = {
      ...good,
      backends: [{ name: 'b0', address: backend6(0), port: 80 }, ...good.backends.slice(1)],
    };
    const cases: [VipTable[], string][] = [
      [[wrongFamily], 'BACKEND_FAMILY_MISMATCH'],
      [[{ ...good, backends: good.backends.map((b) => ({ ...b, port: 8080 })) }], 'BACKEND_PORT_MISMATCH'],
      [[{ ...good, slots: Int32Array.from(good.slots).fill(7, 0, 1) }], 'SLOTS_INVALID'],
      [[{ ...good, slots: new Int32Array(65_536) }], 'SLOTS_INVALID'],
      [[good, good], 'VIP_DUPLICATE'],
    ];
    for (const [desired, code] of cases) {
      const err = await dp.apply(desired).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DataPlaneError);
      expect((err as DataPlaneError).code).toBe(code);
    }
    const other = dataPlane({ interface: 'nope0' });
    await expect(other.apply([good])).rejects.toMatchObject({ code: 'INTERFACE_UNKNOWN' });
    expect((await topo.node.run(['nft', 'list', 'table', 'netdev', 'l4fleet'])).stdout).toBe(before);
    // and the driver still works
    expect((await dp.apply([good])).transactions).toBe(0);
  });
});
