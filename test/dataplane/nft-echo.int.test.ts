/**
 * Ping to a VIP address in the nftables driver against the kernel, in network namespaces (root): the netdev table
 * answers an echo request to a VIP address from the VIP (icmp.echoReplied), IPv4 and IPv6, for direct-return (l2) and
 * NAT addresses alike; fragments are not answered (drops.fragment; to a NAT address the stack reassembles them and the
 * NAT table drops the request as port); an address whose VIPs are gone loses its echo chain;
 * a table written before the echo maps is upgraded in place (flows kept), and a restart over it writes nothing.
 * Design: docs/design/0004-dataplane.md "ICMP to a VIP"; rules: packages/dataplane/src/nft/echo.ts.
 */
import type { VipTable } from '@l4fleet/dataplane';
import { buildTable, type Flow } from '@l4fleet/maglev';
import type { NetnsHost } from '@l4fleet/test-support/netns';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import * as nat from './nat-topology.js';
import { nftDrivers } from './nft-driver.js';
import * as dsr from './topology.js';

const SEED = 0x5eed_ec40;
const COUNT = 3;
const TABLE = 'l4fleet';

/** A UDP VIP of two backends (l2: the DSR bed's, port 80; nat: the NAT bed's members). */
function vip(address: string, o: { nat?: boolean } = {}): VipTable {
  const v6 = address.includes(':');
  const backends = [0, 1].map((i) =>
    o.nat
      ? { name: `m${i}`, address: v6 ? nat.member6(i) : nat.member4(i), port: nat.MEMBER_PORT }
      : { name: `b${i}`, address: v6 ? dsr.backend6(i) : dsr.backend4(i), port: 80 },
  );
  return {
    vip: { address, port: o.nat ? 443 : 80, protocol: 'udp' },
    hash: '5-tuple',
    seed: SEED,
    backends,
    slots: buildTable(backends, 251),
    ...(o.nat ? { forwarding: 'nat' as const } : {}),
  };
}

const ping = (host: NetnsHost, target: string, size?: number): Promise<string[]> =>
  dsr.pingReplies(host, target, { count: COUNT, ...(size === undefined ? {} : { size }) });

const listing = async (node: NetnsHost): Promise<string> =>
  (await node.run(['nft', '-t', 'list', 'table', 'netdev', TABLE])).stdout.replace(/packets \d+ bytes \d+/g, '');

describe('nftables ping - l2 (direct server return)', () => {
  let topo: dsr.DsrTopology;
  const dps = nftDrivers(() => topo.node);

  beforeAll(async () => {
    topo = await dsr.createDsrTopology({ backends: 2 });
  }, 120_000);
  afterEach(() => dps.closeAll());
  afterAll(async () => {
    await topo?.cleanup();
  });

  test('IPv4 and IPv6: every echo request is answered from the VIP (icmp.echoReplied); no drop, no VIP or backend packet; the node address by its kernel', async () => {
    const dp = dps.open();
    await dp.apply([vip(dsr.VIP4), vip(dsr.VIP6)]);
    for (const a of [dsr.VIP4, dsr.VIP6]) expect(await ping(topo.client, a), a).toHaveLength(COUNT);
    for (const a of [dsr.NODE4, dsr.NODE6]) expect(await ping(topo.client, a), a).toHaveLength(COUNT);
    const c = await dp.counters();
    expect(c.icmp?.echoReplied.packets).toBe(2 * COUNT);
    expect(c.drops.port.packets).toBe(0);
    expect(c.vips.reduce((n, v) => n + v.packets, 0)).toBe(0);
    expect(c.backends.reduce((n, b) => n + b.packets, 0)).toBe(0);
  }, 60_000);

  test('fragments: an echo request larger than the MTU is not answered; its fragments are dropped as fragments (as in bpf)', async () => {
    const dp = dps.open();
    await dp.apply([vip(dsr.VIP4), vip(dsr.VIP6)]);
    for (const a of [dsr.VIP4, dsr.VIP6]) expect(await ping(topo.client, a, 2_000), a).toHaveLength(0);
    const c = await dp.counters();
    expect(c.icmp?.echoReplied.packets).toBe(0);
    expect(c.drops.fragment?.packets).toBeGreaterThanOrEqual(2 * 2 * COUNT);
    expect(c.drops.port.packets).toBe(0);
  }, 60_000);

  test('an address whose VIPs are removed loses its echo chain and is not answered; one left keeps it', async () => {
    const dp = dps.open();
    await dp.apply([vip(dsr.VIP4), vip(dsr.VIP6)]);
    await dp.apply([vip(dsr.VIP6)]);
    const text = await listing(topo.node);
    expect(text.match(/chain echo_\S+/g)).toEqual(['chain echo_20010db8007700090000000000000001']);
    expect(await ping(topo.client, dsr.VIP4)).toHaveLength(0);
    expect(await ping(topo.client, dsr.VIP6)).toHaveLength(COUNT);
  }, 60_000);

  test('upgrade: a table from before the echo maps gets them in place (flows kept, no new table); a restart over it writes nothing', async () => {
    const tables = [vip(dsr.VIP4), vip(dsr.VIP6)];
    const first = dps.open();
    await first.apply(tables);
    const kept: Flow[] = [0, 1, 2].map((i) => ({
      src: dsr.CLIENT4,
      sport: 35_000 + i,
      dst: dsr.VIP4,
      dport: 80,
      protocol: 'udp',
    }));
    await dsr.sendFlows(topo, kept);
    await first.close();
    // What a version before the echo maps left: the ingress chain without the echo (and fragment) rules, no echo maps,
    // chains or counter, no drop_fragment counter.
    const old = [
      `flush chain netdev ${TABLE} ingress`,
      `delete counter netdev ${TABLE} drop_fragment`,
      ...[4, 6].map(
        (f) =>
          `add rule netdev ${TABLE} ingress meta pkttype host ${f === 4 ? 'ip' : 'ip6'} daddr . meta l4proto . th dport vmap @vips${f}`,
      ),
      ...[4, 6].map(
        (f) =>
          `add rule netdev ${TABLE} ingress meta pkttype host ${f === 4 ? 'ip' : 'ip6'} daddr @vipaddrs${f} counter name "drop_port" drop`,
      ),
      `flush map netdev ${TABLE} echo4`,
      `flush map netdev ${TABLE} echo6`,
      `delete chain netdev ${TABLE} echo_c633644d`,
      `delete chain netdev ${TABLE} echo_20010db8007700090000000000000001`,
      `delete map netdev ${TABLE} echo4`,
      `delete map netdev ${TABLE} echo6`,
      `delete counter netdev ${TABLE} icmp_echo`,
    ];
    await topo.node.run(['nft', '-f', '-'], { input: `${old.join('\n')}\n` });
    expect(await listing(topo.node)).not.toMatch(/echo|drop_fragment/);
    expect(await ping(topo.client, dsr.VIP4)).toHaveLength(0);

    const second = dps.open();
    const upgraded = await second.apply(tables);
    expect(upgraded).toMatchObject({ tableCreated: false, transactions: 1, slotsChanged: 0 });
    expect((await second.counters()).flowTable.entries).toBe(kept.length);
    for (const a of [dsr.VIP4, dsr.VIP6]) expect(await ping(topo.client, a), a).toHaveLength(COUNT);
    await second.close();

    const before = await listing(topo.node);
    const again = await dps.open().apply(tables);
    expect(again.transactions).toBe(0);
    expect(await listing(topo.node)).toBe(before);
  }, 60_000);
});

describe('nftables ping - nat', () => {
  let topo: nat.NatTopology;
  const dps = nftDrivers(() => topo.node);

  beforeAll(async () => {
    topo = await nat.createNatTopology({ members: 2 });
  }, 120_000);
  afterEach(async () => {
    await dps.closeAll();
  });
  afterAll(async () => {
    await topo?.cleanup();
  });

  test('a NAT address is answered from the VIP by the netdev table, IPv4 and IPv6, before the NAT table sees it', async () => {
    const dp = dps.open();
    await dp.apply([vip(nat.NAT_VIP4, { nat: true }), vip(nat.NAT_VIP6, { nat: true })]);
    for (const a of [nat.NAT_VIP4, nat.NAT_VIP6]) expect(await ping(topo.client, a), a).toHaveLength(COUNT);
    const c = await dp.counters();
    expect(c.icmp?.echoReplied.packets).toBe(2 * COUNT);
    expect(c.drops.port.packets).toBe(0);
  }, 60_000);

  test("fragments: a NAT address is not in the netdev table's fragment drop (direct-return addresses only): the stack reassembles a large ping, and the NAT table drops it as port, unanswered", async () => {
    const dp = dps.open();
    await dp.apply([vip(nat.NAT_VIP4, { nat: true }), vip(nat.NAT_VIP6, { nat: true })]);
    for (const a of [nat.NAT_VIP4, nat.NAT_VIP6]) expect(await ping(topo.client, a, 2_000), a).toHaveLength(0);
    const c = await dp.counters();
    expect(c.icmp?.echoReplied.packets).toBe(0);
    expect(c.drops.fragment?.packets ?? 0).toBe(0);
    // Whole requests (the NAT table runs after conntrack's defragmentation), not their fragments: 2,000 bytes of data.
    expect(c.drops.port.packets).toBeGreaterThanOrEqual(2 * COUNT);
    expect(c.drops.port.bytes).toBeGreaterThanOrEqual(2_000 * c.drops.port.packets);
  }, 60_000);
});
