import { buildTable } from '@l4fleet/maglev';
import { describe, expect, test } from 'vitest';
import type { VipTable } from '../types.js';
import { validateDesired } from '../validate.js';
import { echoAddress, echoDispatchRules, echoRule } from './echo.js';
import { TEST_LAYOUT } from './layout.test-helper.js';
import { renderNft } from './ops.js';
import { type KernelState, planApply } from './plan.js';
import { baseChainRules, baseTable } from './ruleset.js';
import { parseSkeleton } from './state.js';

const layout = TEST_LAYOUT;
const V4 = '198.51.100.7';
const V6 = '2001:db8:9::7';
const HEX4 = 'c6336407';
const HEX6 = '20010db8000900000000000000000007';

function vip(address: string, port = 80): VipTable {
  const v6 = address.includes(':');
  const backends = [1, 2].map((i) => ({ name: `b${i}`, address: v6 ? `2001:db8:1::${i}` : `198.18.0.${i}`, port }));
  return {
    vip: { address, port, protocol: 'udp' },
    hash: '5-tuple',
    seed: 7,
    backends,
    slots: buildTable(backends, 13),
  };
}
const norm = (...t: VipTable[]) =>
  validateDesired(t, { requireSamePort: true, forwarding: ['l2', 'nat'], driver: 'nftables' });
const plan = (current: KernelState | null, t: VipTable[], echo?: ReadonlySet<string>) =>
  planApply(current, norm(...t), layout, echo);
const script = (current: KernelState | null, t: VipTable[], echo?: ReadonlySet<string>): string =>
  renderNft(layout.table, plan(current, t, echo).ops);

describe('ping to a VIP address (nftables)', () => {
  test('the reply rule writes the client into the destination before the VIP into the source, MACs likewise', () => {
    expect(echoRule(HEX4, layout)).toBe(
      `ip daddr set ip saddr ip saddr set ${V4} ip ttl set 64 icmp type set echo-reply ether daddr set ether saddr ` +
        'ether saddr set 02:00:00:00:00:01 counter name "icmp_echo" fwd to "eth0"',
    );
    expect(echoRule(HEX6, layout)).toMatch(
      new RegExp(`^ip6 daddr set ip6 saddr ip6 saddr set ${V6} ip6 hoplimit set 64 icmpv6 type set echo-reply `),
    );
  });

  test('the ingress chain: VLAN-tagged frames left alone first, then VIP traffic, then unfragmented echo requests, then fragments and the port filter', () => {
    const rules = baseChainRules();
    expect(rules[0]).toMatch(/^ether type \{ 8021q, 8021ad \} .* accept$/);
    expect(rules.slice(3, 5)).toEqual(echoDispatchRules());
    expect(rules[1]).toMatch(/vmap @vips4$/);
    expect(rules[5]).toMatch(/@vipaddrs4 counter name "drop_fragment" drop$/);
    expect(rules[7]).toMatch(/@vipaddrs4 counter name "drop_port" drop$/);
    expect(echoDispatchRules()[0]).toContain('ip frag-off & 0x3fff == 0 icmp type echo-request');
    expect(echoDispatchRules()[1]).toContain('ip6 nexthdr 58 icmpv6 type echo-request');
    // No protocol name nft would look up in /etc/protocols (minimal images have none; tcp and udp nft knows itself).
    expect(baseTable(layout)).not.toMatch(/(nexthdr|l4proto) (?!tcp\b|udp\b)[a-z]/);
    const table = baseTable(layout);
    expect(table).toContain('map echo4 { type ipv4_addr : verdict; }');
    expect(table).toContain('map echo6 { type ipv6_addr : verdict; }');
    expect(table).toContain('counter icmp_echo { }');
  });

  test('a new table: one echo chain per VIP address (two VIPs on one address: one chain), mapped by goto', () => {
    const text = script(
      null,
      [vip(V4, 80), vip(V4, 81), vip(V6)].map((t) => ({ ...t, vip: { ...t.vip } })),
    );
    expect(text.match(/add chain netdev l4t echo_\S+/g)).toEqual([
      `add chain netdev l4t echo_${HEX4}`,
      `add chain netdev l4t echo_${HEX6}`,
    ]);
    expect(text).toContain(`add element netdev l4t echo4 { ${V4} : goto echo_${HEX4} }`);
    expect(text).toContain(`add element netdev l4t echo6 { ${V6} : goto echo_${HEX6} }`);
    const p = plan(null, [vip(V4), vip(V6)]);
    expect(p.next.echoAddresses).toEqual(new Set([echoAddress(4, HEX4), echoAddress(6, HEX6)]));
  });

  test('addresses given beyond the direct VIPs (NAT ones) get chains too; nothing to change writes nothing', () => {
    const nat = new Set([echoAddress(4, HEX4), echoAddress(4, 'c6336408')]);
    const first = plan(null, [vip(V4)], nat);
    expect(renderNft('l4t', first.ops)).toContain('add element netdev l4t echo4 { 198.51.100.8 : goto echo_c6336408 }');
    expect(plan(first.next, [vip(V4)], nat).ops).toEqual([]);
  });

  test('an address gone: its element, then its chain (a referenced chain cannot be deleted)', () => {
    const both = plan(null, [vip(V4), vip(V6)]).next;
    const text = script(both, [vip(V6)]);
    const element = text.indexOf(`delete element netdev l4t echo4 { ${V4} }`);
    const chain = text.indexOf(`delete chain netdev l4t echo_${HEX4}`);
    expect(element).toBeGreaterThan(-1);
    expect(chain).toBeGreaterThan(element);
    expect(text).not.toContain(HEX6);
  });

  test('a table from before the echo maps: maps and counter added, the ingress chain rewritten in order, chains for every address; no new table, no slot written', () => {
    const current = plan(null, [vip(V4), vip(V6)]).next;
    const { echoAddresses: _e, ...old } = current;
    const p = plan(old, [vip(V4), vip(V6)]);
    expect(p.tableCreated).toBe(false);
    expect(p.slotsChanged).toBe(0);
    const text = renderNft('l4t', p.ops);
    expect(text).toContain('add counter netdev l4t icmp_echo');
    expect(text).toContain('add map netdev l4t echo4 { type ipv4_addr : verdict; }');
    const flush = text.indexOf('flush chain netdev l4t ingress');
    expect(flush).toBeGreaterThan(-1);
    const added = text.split('\n').filter((l) => l.startsWith('add rule netdev l4t ingress '));
    expect(added.map((l) => l.replace('add rule netdev l4t ingress ', ''))).toEqual(baseChainRules());
    expect(text.match(/add chain netdev l4t echo_/g)).toHaveLength(2);
    expect(text).not.toMatch(/delete table|_slots|_over/);
  });

  test('read back: echo chains by address; a table without both echo maps has none known', () => {
    const text = [
      'table netdev l4t {',
      '\tcomment "x"',
      '\tmap echo4 {',
      '\t}',
      '\tmap echo6 {',
      '\t}',
      `\tchain echo_${HEX4} {`,
      '\t}',
      `\tchain echo_${HEX6} {`,
      '\t}',
      '}',
    ].join('\n');
    expect(parseSkeleton(text).echoAddresses).toEqual(new Set([echoAddress(4, HEX4), echoAddress(6, HEX6)]));
    expect(parseSkeleton(text.replace('\tmap echo6 {', '\tmap other {')).echoAddresses).toBeUndefined();
  });
});
