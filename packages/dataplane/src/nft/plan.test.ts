import { buildTable } from '@l4fleet/maglev';
import { describe, expect, test } from 'vitest';
import type { VipTable } from '../types.js';
import { validateDesired } from '../validate.js';
import { type KernelState, planApply } from './plan.js';
import type { Layout } from './ruleset.js';

const layout: Layout = {
  table: 'l4t',
  iface: 'eth0',
  ifaceMac: '02:00:00:00:00:01',
  flowTimeoutTcpS: 300,
  flowTimeoutUdpS: 30,
  flowTableSize: 1024,
};

function vip(n: number, opts: Partial<VipTable> = {}, size = 13): VipTable {
  const backends = Array.from({ length: n }, (_x, i) => ({ name: `b${i}`, address: `10.0.0.${i + 1}`, port: 80 }));
  return {
    vip: { address: '198.18.2.1', port: 80, protocol: 'tcp' },
    hash: '5-tuple',
    seed: 7,
    backends,
    slots: buildTable(backends, size),
    ...opts,
  };
}

const norm = (...t: VipTable[]) => validateDesired(t, { requireSamePort: true });
const lines = (script: string) => script.split('\n').filter(Boolean);

function applied(...t: VipTable[]): KernelState {
  return planApply(null, norm(...t), layout).next;
}

describe('planApply', () => {
  test('first apply - creates the table, one VIP chain, every slot', () => {
    const p = planApply(null, norm(vip(3)), layout);
    expect(p.tableCreated).toBe(true);
    expect(p.script).toContain('table netdev l4t {');
    expect(p.script).toContain('add chain netdev l4t v_c6120201_tcp_80');
    expect(p.script).toContain('jhash ip saddr . tcp sport . ip daddr . tcp dport mod 13 seed 7');
    expect(p.script).toContain('add element netdev l4t vips4 { 198.18.2.1 . tcp . 80 : jump v_c6120201_tcp_80 }');
    expect(p.slotsChanged).toBe(13);
    expect(p.backendsAdded).toBe(3);
  });

  test('same state again - nothing to do', () => {
    const p = planApply(applied(vip(3)), norm(vip(3)), layout);
    expect(p.script).toBe('');
    expect(p.vips).toEqual([{ vip: '198.18.2.1:80/tcp', action: 'unchanged', slotsChanged: 0, rulesReplaced: false }]);
  });

  test('one slot moves - one delete and one add of that slot, in the VIP map only', () => {
    const t = vip(3);
    const slots = Int32Array.from(t.slots);
    slots[4] = ((slots[4] as number) + 1) % 3;
    const p = planApply(applied(t), norm({ ...t, slots }), layout);
    expect(lines(p.script)).toEqual([
      'delete element netdev l4t v_c6120201_tcp_80_slots { 4 }',
      expect.stringMatching(/^add element netdev l4t v_c6120201_tcp_80_slots \{ 4 : \d+ \}$/),
    ]);
    expect(p.slotsChanged).toBe(1);
  });

  test('backend leaves - its slots move, its id and counter go and are never reused', () => {
    const before = applied(vip(3));
    const p = planApply(before, norm(vip(2)), layout);
    expect(p.backendsRemoved).toBe(1);
    expect(p.script).toContain('delete counter netdev l4t b_80000003');
    expect(p.script).toContain('delete element netdev l4t v_c6120201_tcp_80_live { 2147483651 }');
    const back = planApply(p.next, norm(vip(3)), layout);
    expect(back.script).toContain('add counter netdev l4t b_80000004');
    expect(back.script).not.toContain('flush');
  });

  test('seed or hash changes - rules rewritten, slot map kept', () => {
    const p = planApply(applied(vip(3)), norm(vip(3, { seed: 8 })), layout);
    expect(p.script).toContain('flush chain netdev l4t v_c6120201_tcp_80');
    expect(p.script).not.toContain('flush map');
    expect(p.vips[0]?.rulesReplaced).toBe(true);
  });

  test('table size changes - the slot map is refilled', () => {
    const p = planApply(applied(vip(3)), norm(vip(3, {}, 17)), layout);
    expect(p.script).toContain('flush map netdev l4t v_c6120201_tcp_80_slots');
    expect(p.slotsChanged).toBe(17);
  });

  test('VIP removed - its chain, maps, counter and address go', () => {
    const p = planApply(applied(vip(3)), [], layout);
    expect(lines(p.script)).toEqual(
      expect.arrayContaining([
        'delete element netdev l4t vips4 { 198.18.2.1 . tcp . 80 }',
        'delete chain netdev l4t v_c6120201_tcp_80',
        'delete map netdev l4t v_c6120201_tcp_80_slots',
        'delete counter netdev l4t v_c6120201_tcp_80',
        'delete element netdev l4t vipaddrs4 { 198.18.2.1 }',
      ]),
    );
    expect(p.vips.map((v) => v.action)).toEqual(['removed']);
  });

  test('another layout (interface, timeouts) - the table is replaced in the same transaction', () => {
    const p = planApply(applied(vip(3)), norm(vip(3)), { ...layout, flowTimeoutTcpS: 60 });
    expect(lines(p.script)[0]).toBe('delete table netdev l4t');
    expect(p.tableCreated).toBe(true);
  });

  test('IPv6 VIP - flows keyed by a 32-bit hash of the 5-tuple (nft 1.0.6 dynset key limit)', () => {
    const backends = [{ name: 'a', address: '2001:db8::10', port: 53 }];
    const t: VipTable = {
      vip: { address: '2001:db8::1', port: 53, protocol: 'udp' },
      hash: 'source-ip',
      seed: 1,
      backends,
      slots: buildTable(backends, 13),
    };
    const p = planApply(null, norm(t), layout);
    expect(p.script).toContain('jhash ip6 saddr mod 13 seed 1');
    expect(p.script).toContain(
      'update @flows6_udp { jhash ip6 saddr . udp sport . ip6 daddr . udp dport mod 4294967295',
    );
    expect(p.script).toContain('add element netdev l4t vips6 { 2001:0db8:0000:0000:0000:0000:0000:0001 . udp . 53');
  });
});
