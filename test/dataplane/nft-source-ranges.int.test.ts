/**
 * A VIP's sourceRanges in the nftables driver against the kernel, in network namespaces (root), for direct server
 * return (l2) and `forwarding: nat`: a second client namespace behind the router is the source the ranges leave out.
 * An admitted client reaches a backend, the other gets nothing (drops.source, not the VIP counter); removing a prefix
 * stops a flow already open from it; without ranges both are admitted again; a restarted driver over the same ranges
 * writes nothing, and a table written before sourceRanges existed is upgraded in place (its flows stay).
 */
import { vipKey } from '@l4fleet/config';
import type { DataPlaneCounters, VipTable } from '@l4fleet/dataplane';
import { buildTable, type Flow, type Protocol } from '@l4fleet/maglev';
import type { NetnsHost, NetnsLab } from '@l4fleet/test-support/netns';
import { afterAll, afterEach, beforeAll, describe, expect, onTestFinished, test } from 'vitest';
import * as nat from './nat-topology.js';
import { nftDrivers } from './nft-driver.js';
import * as dsr from './topology.js';

const SEED = 0x5eed_5a5a;
const BACKENDS = 2;

/** Every wait is bounded: a promise that never settles fails the test after `ms` instead of hanging it. */
function within<T>(ms: number, p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_r, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing after ${ms} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** A second client on a link of its own behind the router (`<v4>.2`, `<v6>::2`): the one the ranges leave out. */
async function secondClient(lab: NetnsLab, router: NetnsHost, v4: string, v6: string): Promise<NetnsHost> {
  const c = await lab.host('cli2');
  await lab.veth(c, 'eth0', router, 'c1');
  await router.sh(`ip addr add ${v4}.1/24 dev c1 && ip addr add ${v6}::1/64 dev c1 nodad`);
  await c.sh(`ip addr add ${v4}.2/24 dev eth0 && ip addr add ${v6}::2/64 dev eth0 nodad`);
  await c.sh(`ip route add default via ${v4}.1 && ip -6 route add default via ${v6}::1`);
  // A retransmitted SYN must keep its path (platform-facts: txrehash), as in the harness's own client.
  await c.sh('sysctl -qw net.core.txrehash=0 || true');
  return c;
}

/** A VIP of 2 backends: l2 on port 80 (the DSR bed's backends) or nat on 443 (the NAT bed's members, port 8443). */
type VipOptions = { ranges?: string[]; nat?: boolean; size?: number };
function vip(address: string, protocol: Protocol, o: VipOptions = {}): VipTable {
  const v6 = address.includes(':');
  const backends = Array.from({ length: BACKENDS }, (_x, i) =>
    o.nat
      ? { name: `m${i}`, address: v6 ? nat.member6(i) : nat.member4(i), port: nat.MEMBER_PORT }
      : { name: `b${i}`, address: v6 ? dsr.backend6(i) : dsr.backend4(i), port: 80 },
  );
  return {
    vip: { address, port: o.nat ? 443 : 80, protocol },
    hash: '5-tuple',
    seed: SEED,
    backends,
    slots: buildTable(backends, o.size ?? 251),
    ...(o.nat ? { forwarding: 'nat' as const } : {}),
    ...(o.ranges ? { sourceRanges: o.ranges } : {}),
  };
}

const withRanges = (t: VipTable, ranges?: string[]): VipTable => {
  const { sourceRanges: _r, ...rest } = t;
  return ranges ? { ...rest, sourceRanges: ranges } : rest;
};

/** `n` flows from `src` to the VIP of `t`, source ports from `sport`. */
function flowsOf(t: VipTable, src: string, sport: number, n: number): Flow[] {
  const { address: dst, port: dport, protocol } = t.vip;
  return Array.from({ length: n }, (_x, i) => ({ src, sport: sport + i, dst, dport, protocol }));
}

/** One packet per flow (a SYN closed before any retransmission, or one datagram) from `host`. */
async function sendFrom(host: NetnsHost, flows: readonly Flow[]): Promise<void> {
  await host.run(['python3', '-c', dsr.SEND_FLOWS_PY], { input: JSON.stringify(flows), timeoutMs: 30_000 });
}

const vipPackets = (c: DataPlaneCounters, t: VipTable): number =>
  c.vips.find((v) => v.vip === vipKey(t.vip))?.packets ?? 0;
const ms = (r: { durationMs: number }): string => `${r.durationMs.toFixed(0)} ms`;
/** An nft listing without counter values (the one thing that changes when nothing was written). */
const noCounts = (listing: string): string => listing.replace(/packets \d+ bytes \d+/g, '');

/** The most a VIP may have (1,024): `extra` and 1,023 /22s of 10.0.0.0/12, which holds none of the lab's addresses. */
const manyRanges = (extra: string): string[] => [
  extra,
  ...Array.from({ length: 1_023 }, (_x, i) => `10.${i >> 6}.${(i & 63) << 2}.0/22`),
];

describe('nftables source ranges - l2 (direct server return)', () => {
  const [C4, C6, D4, D6] = [dsr.CLIENT4, dsr.CLIENT6, '198.18.73.2', '2001:db8:77:3::2'];
  let topo: dsr.DsrTopology;
  let client2: NetnsHost;
  const dps = nftDrivers(() => topo.node);
  /** Which backends recorded each flow (undefined: it never got through). */
  const landed = async (flows: readonly Flow[]): Promise<(number[] | undefined)[]> => {
    const got = await dsr.landings(topo);
    return flows.map((f) => got.get(dsr.flowKey(f)));
  };
  const expectLanded = async (t: VipTable, flows: readonly Flow[]): Promise<void> =>
    expect(await landed(flows)).toEqual(flows.map((f) => [dsr.expectedBackend(t, f)]));

  beforeAll(async () => {
    topo = await dsr.createDsrTopology({ backends: BACKENDS });
    client2 = await secondClient(topo.lab, topo.router, '198.18.73', '2001:db8:77:3');
    await dsr.installFlowRecorders(topo.backends);
  }, 120_000);
  afterEach(async () => {
    await dps.closeAll();
    await dsr.clearRecorders(topo.backends);
  });
  afterAll(async () => {
    await topo?.cleanup();
  });

  test('l2 - IPv4 and IPv6, tcp and udp: the admitted client lands on its backend; the other is dropped, counted as source, not by the VIP', async () => {
    const r4 = [`${C4}/32`, '198.19.254.0/24'];
    const r6 = ['2001:db8:77:1::/64'];
    const tables = [
      vip(dsr.VIP4, 'udp', { ranges: r4 }),
      vip(dsr.VIP4, 'tcp', { ranges: r4 }),
      vip(dsr.VIP6, 'udp', { ranges: r6 }),
      vip(dsr.VIP6, 'tcp', { ranges: r6 }),
    ];
    const dp = dps.open();
    await dp.apply(tables);
    const v4 = (t: VipTable): boolean => t.vip.address === dsr.VIP4;
    const admitted = tables.map((t, i) => flowsOf(t, v4(t) ? C4 : C6, 30_000 + i * 100, 12));
    const refused = tables.flatMap((t, i) => flowsOf(t, v4(t) ? D4 : D6, 31_000 + i * 100, 12));
    await dsr.sendFlows(topo, admitted.flat());
    await sendFrom(client2, refused);
    for (const [i, t] of tables.entries()) await expectLanded(t, admitted[i] as Flow[]);
    expect(await landed(refused)).toEqual(refused.map(() => undefined));
    const c = await dp.counters();
    // One packet per refused flow (the SYNs are closed before a retransmission), none of them the VIPs'.
    expect(c.drops.source.packets).toBe(refused.length);
    expect(c.drops.port.packets).toBe(0);
    for (const t of tables) expect(vipPackets(c, t), vipKey(t.vip)).toBe(12);
  }, 60_000);

  test('l2 - removing the prefix stops flows already open from it (tcp IPv4, udp IPv6); without ranges both clients are admitted again', async () => {
    onTestFinished(await within(10_000, dsr.nameServers(topo.backends, 80), 'name servers'));
    const tcp4 = vip(dsr.VIP4, 'tcp', { ranges: [`${C4}/32`] });
    const udp6 = vip(dsr.VIP6, 'udp', { ranges: [`${C6}/128`] });
    const dp = dps.open();
    await dp.apply([tcp4, udp6]);
    const held = dsr.lineClient(topo.client, C4, 32_000, dsr.VIP4, 80, 2_000);
    onTestFinished(() => void held.close());
    expect(await held.ask()).toBe(`b${dsr.expectedBackend(tcp4, flowsOf(tcp4, C4, 32_000, 1)[0] as Flow)}`);
    const udpFlow = flowsOf(udp6, C6, 32_100, 1);
    await dsr.sendFlows(topo, udpFlow);
    await expectLanded(udp6, udpFlow);
    const entries = (await dp.counters()).flowTable.entries;
    expect(entries).toBe(2);

    const narrowed = await dp.apply([withRanges(tcp4, ['198.19.254.0/24']), withRanges(udp6, ['2001:db8:ffff::/48'])]);
    expect(narrowed.transactions).toBe(1);
    expect(narrowed.vips).toEqual(
      [tcp4, udp6].map((t) => ({ vip: vipKey(t.vip), action: 'updated', slotsChanged: 0, rulesReplaced: true })),
    );
    const before = await dp.counters();
    expect(await held.ask()).toBe('timeout');
    await dsr.clearRecorders(topo.backends);
    await dsr.sendFlows(topo, udpFlow);
    expect(await landed(udpFlow)).toEqual([undefined]);
    const after = await dp.counters();
    // The TCP segment (and its retransmissions) and the datagram; the flow entries are still there (maps kept).
    expect(after.drops.source.packets - before.drops.source.packets).toBeGreaterThanOrEqual(2);
    expect(vipPackets(after, tcp4)).toBe(vipPackets(before, tcp4));
    expect(after.flowTable.entries).toBe(entries);

    const reopened = await dp.apply([withRanges(tcp4), withRanges(udp6)]);
    expect(reopened.vips.map((v) => v.action)).toEqual(['updated', 'updated']);
    await dsr.clearRecorders(topo.backends);
    const both = [...flowsOf(udp6, C6, 32_200, 5), ...flowsOf(udp6, D6, 32_300, 5)];
    await dsr.sendFlows(topo, both.slice(0, 5));
    await sendFrom(client2, both.slice(5));
    await expectLanded(udp6, both);
    for (const host of [topo.client, client2]) {
      const src = host === client2 ? D4 : C4;
      const c = dsr.lineClient(host, src, 32_400, dsr.VIP4, 80, 3_000);
      onTestFinished(() => void c.close());
      expect(await c.ask()).toBe(`b${dsr.expectedBackend(tcp4, flowsOf(tcp4, src, 32_400, 1)[0] as Flow)}`);
    }
  }, 60_000);

  test('l2 - restart: a table from before sourceRanges is upgraded in place (flows kept); the same ranges again write nothing', async () => {
    const plain = [vip(dsr.VIP4, 'udp'), vip(dsr.VIP6, 'udp')] as const;
    const first = dps.open();
    await first.apply(plain);
    const kept = flowsOf(plain[0], C4, 33_000, 3);
    await dsr.sendFlows(topo, kept);
    await first.close();
    // What the previous version left: the same table without the drop_source counter.
    await topo.node.run(['nft', 'delete', 'counter', 'netdev', 'l4fleet', 'drop_source']);

    const ranged = [
      withRanges(plain[0], [`${C4}/32`, '198.19.254.0/24']),
      withRanges(plain[1], ['2001:db8:77:1::/64']),
    ];
    const second = dps.open();
    const upgraded = await second.apply(ranged);
    expect(upgraded).toMatchObject({ tableCreated: false, transactions: 1 });
    for (const v of upgraded.vips) expect(v).toMatchObject({ action: 'updated', rulesReplaced: true, slotsChanged: 0 });
    expect((await second.counters()).flowTable.entries).toBe(kept.length);
    await sendFrom(client2, flowsOf(plain[0], D4, 33_100, 4));
    expect((await second.counters()).drops.source.packets).toBe(4);
    await second.close();

    const listing = async (): Promise<string> =>
      noCounts((await topo.node.run(['nft', '-a', '-t', 'list', 'table', 'netdev', 'l4fleet'])).stdout);
    const before = await listing();
    // The same ranges in another order are the same set.
    const again = await dps
      .open()
      .apply([withRanges(plain[0], ['198.19.254.0/24', `${C4}/32`]), ranged[1] as VipTable]);
    expect(again.transactions).toBe(0);
    expect(again.vips.map((v) => v.action)).toEqual(['unchanged', 'unchanged']);
    expect(await listing()).toBe(before);
  }, 60_000);

  test('l2 - 1,024 prefixes on a 65,537-slot VIP: timed applies; the admitted client lands, the other is dropped', async (ctx) => {
    const t = vip(dsr.VIP4, 'udp', { size: 65_537 });
    const dp = dps.open();
    const added = await dp.apply([t]);
    const many = await dp.apply([withRanges(t, manyRanges(`${C4}/32`))]);
    expect(many.vips[0]).toMatchObject({ action: 'updated', rulesReplaced: true, slotsChanged: 0 });
    const changed = withRanges(t, [...manyRanges(`${C4}/32`).slice(0, -1), '172.16.0.0/12']);
    const oneChanged = await dp.apply([changed]);
    expect(oneChanged.transactions).toBe(1);
    await dp.close();
    const restarted = dps.open();
    const reread = await restarted.apply([changed]);
    expect(reread.transactions).toBe(0);
    const refused = flowsOf(t, D4, 34_100, 5);
    await dsr.sendFlows(topo, flowsOf(t, C4, 34_000, 5));
    await sendFrom(client2, refused);
    await expectLanded(t, flowsOf(t, C4, 34_000, 5));
    expect(await landed(refused)).toEqual(refused.map(() => undefined));
    expect((await restarted.counters()).drops.source.packets).toBe(refused.length);
    await ctx.annotate(
      `added ${ms(added)}; 1,024 prefixes added ${ms(many)}; one prefix changed ${ms(oneChanged)}; ` +
        `restart over them (read + compare, nothing written) ${ms(reread)}`,
    );
  }, 60_000);
});

describe('nftables source ranges - nat', () => {
  const [C4, C6, D4, D6] = [nat.NAT_CLIENT4, nat.NAT_CLIENT6, '198.18.83.2', '2001:db8:88:3::2'];
  let topo: nat.NatTopology;
  let client2: NetnsHost;
  const dps = nftDrivers(() => topo.node);
  const natVip = (address: string, protocol: Protocol, ranges?: string[]): VipTable =>
    vip(address, protocol, { nat: true, ...(ranges ? { ranges } : {}) });

  /** NAT_CLIENT_PY from `host`: one answer per flow, `<member> <peer>` or an error (3 s per unanswered flow). */
  async function request(host: NetnsHost, flows: readonly Flow[]): Promise<string[]> {
    const r = await host.run(['python3', '-c', nat.NAT_CLIENT_PY], { input: JSON.stringify(flows), timeoutMs: 30_000 });
    const answers = r.stdout.trim().split('\n');
    return answers.map((l) => (JSON.parse(l) as { reply?: string }).reply ?? `error ${l}`);
  }
  /** The member the table picks for `f`, as the member answers (`m1 198.18.82.2`: its name, then the node). */
  const served = (t: VipTable, f: Flow): RegExp => new RegExp(`^${t.backends[dsr.expectedBackend(t, f)]?.name} `);
  /** Conntrack entries of the node from `src`. */
  const conntrackFrom = async (src: string): Promise<number> =>
    (await topo.node.run(['cat', '/proc/net/nf_conntrack'])).stdout
      .split('\n')
      .filter((l) => l.includes(` src=${src} `)).length;

  beforeAll(async () => {
    topo = await nat.createNatTopology({ members: BACKENDS });
    client2 = await secondClient(topo.lab, topo.router, '198.18.83', '2001:db8:88:3');
    const server = (m: NetnsHost, i: number) =>
      m.spawn(['python3', '-c', nat.MEMBER_SERVER_PY, `m${i}`, `${nat.MEMBER_PORT}`]);
    const ready = Promise.all(topo.members.map(server).map((s) => new Promise((r) => s.stdout?.once('data', r))));
    await within(10_000, ready, 'member servers');
  }, 120_000);
  afterEach(async () => {
    await dps.closeAll();
    await topo.node.run(['conntrack', '-F']);
  });
  afterAll(async () => {
    await topo?.cleanup();
  });

  test('nat - IPv4 and IPv6: the admitted client reaches its member; the other is dropped (no conntrack entry), counted as source, not by the VIP', async () => {
    const tables = [
      natVip(nat.NAT_VIP4, 'tcp', [`${C4}/32`]),
      natVip(nat.NAT_VIP4, 'udp', [`${C4}/32`]),
      natVip(nat.NAT_VIP6, 'tcp', ['2001:db8:88:1::/64']),
      natVip(nat.NAT_VIP6, 'udp', ['2001:db8:88:1::/64']),
    ];
    const dp = dps.open();
    await dp.apply(tables);
    const v4 = (t: VipTable): boolean => t.vip.address === nat.NAT_VIP4;
    const admitted = tables.map((t, i) => flowsOf(t, v4(t) ? C4 : C6, 40_000 + i * 100, 4));
    const answers = await request(topo.client, admitted.flat());
    admitted.flat().forEach((f, k) => {
      expect(answers[k], JSON.stringify(f)).toMatch(served(tables[Math.floor(k / 4)] as VipTable, f));
    });
    const refused = tables.flatMap((t, i) => flowsOf(t, v4(t) ? D4 : D6, 41_000 + i * 100, 4));
    await sendFrom(client2, refused);
    // A client that waits gets nothing.
    expect(await request(client2, [{ ...(refused[0] as Flow), sport: 41_900 }])).toEqual([
      expect.stringMatching(/^error .*timed out/),
    ]);
    const c = await dp.counters();
    // One SYN per refused flow, then the waiting client's SYN with its retransmissions (1 s and 3 s: 2-3 in 3 s).
    expect(c.drops.source.packets).toBeGreaterThanOrEqual(refused.length + 2);
    expect(c.drops.source.packets).toBeLessThanOrEqual(refused.length + 3);
    for (const t of tables) expect(vipPackets(c, t), vipKey(t.vip)).toBe(4);
    expect(await conntrackFrom(D4)).toBe(0);
    expect(await conntrackFrom(D6)).toBe(0);
  }, 60_000);

  test('nat - removing the prefix stops a connection already open from it; without ranges both clients are admitted again', async () => {
    const tcp4 = natVip(nat.NAT_VIP4, 'tcp', [`${C4}/32`]);
    const dp = dps.open();
    await dp.apply([tcp4]);
    const held = nat.holdConnection(topo.client, nat.NAT_VIP4, 1.5);
    onTestFinished(() => void held.close());
    expect(await within(10_000, held.ready(), 'connect')).toBe('connected');
    expect(await within(10_000, held.send(), 'reply')).toMatch(/^m\d /);
    const narrowed = await dp.apply([withRanges(tcp4, ['198.19.254.0/24'])]);
    expect(narrowed.vips).toEqual([{ vip: vipKey(tcp4.vip), action: 'updated', slotsChanged: 0, rulesReplaced: true }]);
    const before = await dp.counters();
    expect(await within(10_000, held.send(), 'reply')).toBe('TimeoutError');
    const after = await dp.counters();
    expect(after.drops.source.packets).toBeGreaterThan(before.drops.source.packets);
    expect(vipPackets(after, tcp4)).toBe(vipPackets(before, tcp4));

    expect((await dp.apply([withRanges(tcp4)])).vips.map((v) => v.action)).toEqual(['updated']);
    for (const host of [topo.client, client2]) {
      const f = flowsOf(tcp4, host === client2 ? D4 : C4, 42_000, 1);
      expect(await request(host, f)).toEqual([expect.stringMatching(served(tcp4, f[0] as Flow))]);
    }
  }, 60_000);

  test('nat - restart: a table from before sourceRanges gets the source filter in place (connections kept); the same ranges are not rewritten', async () => {
    const plain = natVip(nat.NAT_VIP4, 'tcp');
    const first = dps.open();
    await first.apply([plain]);
    const held = nat.holdConnection(topo.client, nat.NAT_VIP4, 3);
    onTestFinished(() => void held.close());
    expect(await within(10_000, held.ready(), 'connect')).toBe('connected');
    const member = await within(10_000, held.send(), 'reply');
    await first.close();
    // What the previous version left: the NAT table without the source filter.
    for (const o of ['chain source', 'map natsrc4', 'map natsrc6', 'counter nat_drop_source']) {
      await topo.node.run(['sh', '-c', `nft delete ${o.replace(' ', ' inet l4fleet_nat ')}`]);
    }
    const ranged = withRanges(plain, [`${C4}/32`, '198.19.254.0/24']);
    const second = dps.open();
    expect((await second.apply([ranged])).tableCreated).toBe(false);
    expect(await within(10_000, held.send(), 'reply')).toBe(member);
    await sendFrom(client2, flowsOf(plain, D4, 43_000, 3));
    expect((await second.counters()).drops.source.packets).toBe(3);
    await second.close();

    const src = async (): Promise<string> => {
      const chain = ['list', 'chain', 'inet', 'l4fleet_nat', 'v_c6336458_tcp_443_src'];
      return noCounts((await topo.node.run(['nft', '-a', ...chain])).stdout);
    };
    const before = await src();
    expect(before).toContain(
      'ip saddr != { 198.18.81.2, 198.19.254.0/24 } counter name "nat_drop_source" drop comment',
    );
    const third = dps.open();
    // Adopting the table rewrites the VIP's rules and slots once (nat-plan.ts); its source chain stays as it is.
    await third.apply([withRanges(plain, ['198.19.254.0/24', `${C4}/32`])]);
    expect(await src()).toBe(before);
    expect((await third.apply([ranged])).transactions).toBe(0);
    expect(await within(10_000, held.send(), 'reply')).toBe(member);
  }, 60_000);

  test('nat - 1,024 prefixes: a timed apply; the admitted client is served, the other dropped', async (ctx) => {
    const t = natVip(nat.NAT_VIP4, 'udp');
    const dp = dps.open();
    await dp.apply([t]);
    const many = await dp.apply([withRanges(t, manyRanges(`${C4}/32`))]);
    expect(many.vips[0]).toMatchObject({ action: 'updated', rulesReplaced: true, slotsChanged: 0 });
    const f = flowsOf(t, C4, 44_000, 1);
    expect(await request(topo.client, f)).toEqual([expect.stringMatching(served(t, f[0] as Flow))]);
    await sendFrom(client2, flowsOf(t, D4, 44_100, 2));
    expect((await dp.counters()).drops.source.packets).toBe(2);
    await ctx.annotate(`1,024 prefixes added ${ms(many)}`);
  }, 60_000);
});
