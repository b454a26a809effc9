import { buildTable } from '@l4fleet/maglev';
import { pino } from 'pino';
import { describe, expect, test } from 'vitest';
import type { Exec } from '../exec.js';
import type { VipTable } from '../types.js';
import { validateDesired } from '../validate.js';
import { createNftablesDataPlane } from './driver.js';
import { TEST_LAYOUT } from './layout.test-helper.js';
import { type NatState, planNat } from './nat-plan.js';
import { parseNatSkeleton } from './nat-table.js';
import { renderNft } from './ops.js';
import { type KernelState, planApply } from './plan.js';
import { type Layout, vipSignature } from './ruleset.js';
import { sourceFilterOf } from './source-ranges.js';
import { parseSkeleton } from './state.js';

const layout: Layout = TEST_LAYOUT;

function vip(opts: Partial<VipTable> = {}, address = '198.18.2.1'): VipTable {
  const v6 = address.includes(':');
  const backends = [1, 2, 3].map((i) => ({
    name: `b${i}`,
    address: v6 ? `2001:db8:1::${i}` : `198.18.0.${i}`,
    port: 80,
  }));
  return {
    vip: { address, port: 80, protocol: 'tcp' },
    hash: '5-tuple',
    seed: 7,
    backends,
    slots: buildTable(backends, 13),
    ...opts,
  };
}

const natVip = (opts: Partial<VipTable> = {}): VipTable =>
  vip({ forwarding: 'nat', vip: { address: '198.51.100.1', port: 443, protocol: 'tcp' }, ...opts });
const norm = (...t: VipTable[]) =>
  validateDesired(t, { requireSamePort: true, forwarding: ['l2', 'nat'], driver: 'nftables' });
const script = (current: KernelState | null, ...t: VipTable[]): string =>
  renderNft(layout.table, planApply(current, norm(...t), layout).ops);
const applied = (...t: VipTable[]): KernelState => planApply(null, norm(...t), layout).next;
const natApplied = (...t: VipTable[]): NatState => planNat(null, norm(...t), 'l4t_nat').next as NatState;
const natScript = (current: NatState | null, ...t: VipTable[]): string =>
  planNat(current, norm(...t), 'l4t_nat').lines.join('\n');
const filter = (t: VipTable) => sourceFilterOf(norm(t)[0] as ReturnType<typeof norm>[number]);

describe('source ranges - the filter', () => {
  test('sorted canonical text; the digest stands for the set, whatever the order', () => {
    const a = filter(vip({ sourceRanges: ['198.18.4.7/32', '10.0.0.0/8'] }));
    expect(a?.prefixes).toEqual(['10.0.0.0/8', '198.18.4.7/32']);
    expect(a?.digest).toMatch(/^[0-9a-f]{16}$/);
    expect(filter(vip({ sourceRanges: ['10.0.0.0/8', '198.18.4.7/32'] }))?.digest).toBe(a?.digest);
    expect(filter(vip({ sourceRanges: ['10.0.0.0/9', '198.18.4.7/32'] }))?.digest).not.toBe(a?.digest);
    expect(filter(vip())).toBeUndefined();
  });
});

describe('source ranges - direct return (netdev table)', () => {
  test('the drop rule is the VIP chain first rule, before its counter, only with ranges; ip6 saddr for IPv6', () => {
    const rules = (s: string, key: string) => s.split('\n').filter((l) => l.startsWith(`add rule netdev l4t ${key} `));
    const v4 = rules(script(null, vip({ sourceRanges: ['198.18.4.7/32', '10.0.0.0/8'] })), 'v_c6120201_tcp_80');
    expect(v4[0]).toBe(
      'add rule netdev l4t v_c6120201_tcp_80 ip saddr != { 10.0.0.0/8, 198.18.4.7/32 } counter name "drop_source" drop',
    );
    expect(v4[1]).toMatch(
      /^add rule netdev l4t v_c6120201_tcp_80 counter name "v_c6120201_tcp_80" comment "l4fleet vip .* src=[0-9a-f]{16}"$/,
    );
    const key6 = 'v_20010db8000000000000000000000001_tcp_80';
    const v6 = rules(script(null, vip({ sourceRanges: ['2001:db8:77:1::/64'] }, '2001:db8::1')), key6);
    expect(v6[0]).toBe(
      `add rule netdev l4t ${key6} ip6 saddr != { 2001:db8:77:1::/64 } counter name "drop_source" drop`,
    );
    const plain = script(null, vip());
    expect(plain).not.toContain('saddr !=');
    expect(plain).not.toContain(' src=');
    // The table's counter is there from the start, used or not.
    expect(plain).toContain('counter drop_source { }');
  });

  test('only the ranges change - the VIP rules are rewritten, its slots and flow maps and other VIPs untouched', () => {
    const other = vip({}, '198.18.2.2');
    const before = applied(vip({ sourceRanges: ['10.0.0.0/8'] }), other);
    const p = planApply(before, norm(vip({ sourceRanges: ['198.19.254.0/24'] }), other), layout);
    const text = renderNft(layout.table, p.ops);
    expect(text.split('\n')[0]).toBe('flush chain netdev l4t v_c6120201_tcp_80');
    expect(text).toContain('ip saddr != { 198.19.254.0/24 }');
    // Only the VIP's chain: no element of its slot, overlay or flow maps, nothing of the other VIP.
    expect(text.split('\n').filter(Boolean)).toEqual(
      text.split('\n').filter((l) => /^(flush chain|add rule) netdev l4t v_c6120201_tcp_80( |$)/.test(l)),
    );
    expect(p.vips).toEqual([
      { vip: '198.18.2.1:80/tcp', action: 'updated', slotsChanged: 0, rulesReplaced: true },
      { vip: '198.18.2.2:80/tcp', action: 'unchanged', slotsChanged: 0, rulesReplaced: false },
    ]);
    // Removed ranges: rewritten without the rule; the same ranges in another order: nothing to do.
    expect(script(p.next, vip(), other)).not.toContain('saddr !=');
    expect(script(p.next, vip({ sourceRanges: ['198.19.254.0/24'] }), other)).toBe('');
    const two = applied(vip({ sourceRanges: ['10.0.0.0/8', '198.19.254.0/24'] }));
    expect(script(two, vip({ sourceRanges: ['198.19.254.0/24', '10.0.0.0/8'] }))).toBe('');
  });

  test('the signature changes with the ranges and fits nft comments (128 bytes) with every field at its longest', () => {
    const shape = {
      key: 'v',
      family: 4 as const,
      protocol: 'tcp' as const,
      hash: 'source-ip' as const,
      seed: 1,
      size: 13,
    };
    const a = filter(vip({ sourceRanges: ['10.0.0.0/8'] }));
    const b = filter(vip({ sourceRanges: ['10.0.0.0/16'] }));
    expect(vipSignature({ ...shape, ...(a ? { source: a } : {}) })).not.toBe(
      vipSignature({ ...shape, ...(b ? { source: b } : {}) }),
    );
    expect(vipSignature(shape)).toBe('l4fleet vip hash=source-ip seed=1 size=13 syn=table');
    const longest = vipSignature({
      ...shape,
      seed: 4_294_967_295,
      size: 65_537,
      idleTimeoutS: 604_800,
      reselect: true,
      ...(a ? { source: a } : {}),
    });
    expect(Buffer.byteLength(longest)).toBeLessThanOrEqual(128);
  });

  test('a table written before sourceRanges (no drop_source counter) gets it once, without a new layout', () => {
    const text = [
      'table netdev l4t {',
      '\tcomment "l4fleet layout=3"',
      '\tcounter drop_port {',
      '\t\tpackets 0 bytes 0',
      '\t}',
      '\tcounter drop_source {',
      '\t}',
      '}',
    ].join('\n');
    expect([...parseSkeleton(text).counters]).toEqual(['drop_port', 'drop_source']);
    const current = applied(vip());
    const old: KernelState = { ...current, dropSourceCounter: false };
    const p = planApply(old, norm(vip({ sourceRanges: ['10.0.0.0/8'] })), layout);
    expect(p.tableCreated).toBe(false);
    const lines = renderNft(layout.table, p.ops).split('\n');
    expect(lines[0]).toBe('add counter netdev l4t drop_source');
    expect(lines.join('\n')).not.toMatch(/delete table|flush map/);
    expect(script(p.next, vip({ sourceRanges: ['10.0.0.0/8'] }))).toBe('');
  });
});

describe('source ranges - nat', () => {
  const key = 'v_c6336401_tcp_443';

  test('a VIP with ranges: a source chain on the raw hook, jumped to from natsrc; none without ranges', () => {
    const text = natScript(null, natVip({ sourceRanges: ['198.18.81.2/32'] }));
    expect(text).toContain('type filter hook prerouting priority raw; policy accept;');
    expect(text).toContain('ip daddr . meta l4proto . th dport vmap @natsrc4');
    expect(text).toContain('counter nat_drop_source { }');
    expect(text).toContain(`add chain inet l4t_nat ${key}_src`);
    expect(text).toMatch(
      new RegExp(
        `add rule inet l4t_nat ${key}_src ip saddr != \\{ 198\\.18\\.81\\.2/32 \\} counter name "nat_drop_source" drop comment "l4fleet nat src=[0-9a-f]{16}"`,
      ),
    );
    expect(text).toContain(`add element inet l4t_nat natsrc4 { 198.51.100.1 . tcp . 443 : jump ${key}_src }`);
    // The VIP's own chain does not change: the check sits before conntrack, not in the nat chain.
    expect(
      natScript(null, natVip())
        .split('\n')
        .filter((l) => l.includes(`${key} `)),
    ).toEqual(text.split('\n').filter((l) => l.includes(`${key} `)));
    expect(natScript(null, natVip())).not.toContain('_src');
  });

  test('changing ranges rewrites the source chain only; removing them, or the VIP, deletes element and chain', () => {
    const before = natApplied(natVip({ sourceRanges: ['198.18.81.2/32'] }));
    const changed = planNat(before, norm(natVip({ sourceRanges: ['198.18.83.0/24'] })), 'l4t_nat');
    expect(changed.lines).toEqual([
      `flush chain inet l4t_nat ${key}_src`,
      expect.stringContaining(`add rule inet l4t_nat ${key}_src ip saddr != { 198.18.83.0/24 }`),
    ]);
    expect(changed.vips).toEqual([
      { vip: '198.51.100.1:443/tcp', action: 'updated', slotsChanged: 0, rulesReplaced: true },
    ]);
    expect(natScript(changed.next, natVip({ sourceRanges: ['198.18.83.0/24'] }))).toBe('');
    expect(natScript(changed.next, natVip())).toBe(
      [`delete element inet l4t_nat natsrc4 { 198.51.100.1 . tcp . 443 }`, `delete chain inet l4t_nat ${key}_src`].join(
        '\n',
      ),
    );
    const gone = natScript(changed.next, natVip({ vip: { address: '198.51.100.2', port: 443, protocol: 'tcp' } }));
    expect(gone).toContain(
      `delete element inet l4t_nat natsrc4 { 198.51.100.1 . tcp . 443 }\ndelete chain inet l4t_nat ${key}_src`,
    );
  });

  test('after a restart: the same ranges are not written again; a table without the source filter gets it added', () => {
    const listing = (src: string) =>
      `table inet l4t_nat {\n\tcomment "l4fleet nat layout=1"\n\tct timeout to_tcp4_300_10_10 {\n\t}\n${src}` +
      `\tchain ${key} {\n\t}\n}\n`;
    const ranges = { sourceRanges: ['198.18.81.2/32'] };
    const signature = natApplied(natVip(ranges)).vips.get(key)?.sourceSignature as string;
    const srcChain = `\tchain source {\n\t}\n\tchain ${key}_src {\n\t\tip saddr 198.18.81.2 counter name "nat_drop_source" drop comment "${signature}"\n\t}\n`;
    const adopted = parseNatSkeleton(listing(srcChain));
    expect(adopted.sourceChain).toBe(true);
    expect(adopted.vips.get(key)?.sourceSignature).toBe(signature);
    const text = natScript(adopted, natVip(ranges));
    expect(text).toContain(`flush chain inet l4t_nat ${key}`); // the VIP's rules: adopted as before
    expect(text).not.toContain('_src');
    const old = parseNatSkeleton(listing(''));
    expect(old.sourceChain).toBe(false);
    const upgraded = natScript(old, natVip(ranges));
    expect(upgraded).not.toContain('delete table');
    const raw = upgraded.indexOf('chain source {\n    type filter hook prerouting priority raw;');
    expect(raw).toBeGreaterThan(-1);
    expect(raw).toBeLessThan(upgraded.indexOf(`add chain inet l4t_nat ${key}_src`));
  });
});

describe('source ranges - the driver', () => {
  /** An exec that answers counter listings of both tables and empty flow maps, and records every call. */
  function fakeExec(calls: string[][]): Exec {
    const counters = (list: [string, number][]) =>
      JSON.stringify({
        nftables: list.map(([name, packets]) => ({ counter: { name, packets, bytes: packets * 100 } })),
      });
    return async (argv) => {
      calls.push([...argv]);
      const line = argv.join(' ');
      if (line.includes('list counters table netdev')) {
        return {
          code: 0,
          stdout: counters([
            ['drop_port', 1],
            ['drop_source', 5],
          ]),
          stderr: '',
        };
      }
      if (line.includes('list counters table inet')) {
        return {
          code: 0,
          stdout: counters([
            ['nat_drop_source', 2],
            ['nat_drop_no_backend', 4],
          ]),
          stderr: '',
        };
      }
      return { code: 0, stdout: JSON.stringify({ nftables: [{ map: {} }] }), stderr: '' };
    };
  }
  const logger = pino({ level: 'silent' });

  test('counters - drops.source sums both tables, as port and no-backend do', async () => {
    const dp = createNftablesDataPlane({ interface: 'eth0', logger, exec: fakeExec([]), deltaWriter: 'nft' });
    const c = await dp.counters();
    expect(c.drops.source).toEqual({ packets: 7, bytes: 700 });
    expect(c.drops.port).toEqual({ packets: 1, bytes: 100 });
    expect(c.drops['no-backend']).toEqual({ packets: 4, bytes: 400 });
    await dp.close();
  });

  test('bad ranges on a NAT VIP are refused before anything is run (the netdev table is written first)', async () => {
    const calls: string[][] = [];
    const dp = createNftablesDataPlane({ interface: 'eth0', logger, exec: fakeExec(calls), deltaWriter: 'nft' });
    const err = await dp.apply([vip(), natVip({ sourceRanges: ['2001:db8::/32'] })]).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'VIP_INVALID' });
    expect(calls).toEqual([]);
    await dp.close();
  });
});
