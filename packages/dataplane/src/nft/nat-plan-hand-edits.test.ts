/**
 * The NAT plan after hand edits the read sees (nat-base.ts, nat-orphans.ts): base chains deleted, flushed or edited,
 * base objects deleted, routing elements whose verdict was changed.
 */
import { buildTable } from '@l4fleet/maglev';
import { describe, expect, test } from 'vitest';
import type { VipTable } from '../types.js';
import { validateDesired } from '../validate.js';
import { natBaseListing } from './nat-base.test-helper.js';
import { type NatState, planNat } from './nat-plan.js';
import { parseNatSkeleton } from './nat-table.js';

function nat(n: number, opts: Partial<VipTable> = {}, size = 13): VipTable {
  const backends = Array.from({ length: n }, (_x, i) => ({ name: `m${i}`, address: `198.18.0.${i + 1}`, port: 8443 }));
  return {
    vip: { address: '198.51.100.1', port: 443, protocol: 'tcp' },
    hash: '5-tuple',
    seed: 7,
    backends,
    slots: buildTable(backends, size),
    forwarding: 'nat',
    ...opts,
  };
}

const norm = (...t: VipTable[]) =>
  validateDesired(t, { requireSamePort: true, forwarding: ['l2', 'nat'], driver: 'nftables' });

// `nft delete chain inet T postrouting` or `nft flush chain inet T prerouting`: the read looked at the VIP chains only,
// so neither a restart nor a verify wrote them again, and every NAT VIP stayed without service.
describe('nat plan - base chains', () => {
  const V = 'v_c6336401_tcp_443';
  const read = (base: Parameters<typeof natBaseListing>[0]): NatState =>
    parseNatSkeleton(
      `table inet l4t_nat {\n${natBaseListing(base)}\tct timeout to_tcp4_300_10_10 {\n\t}\n` +
        `\tcounter ${V} {\n\t}\n\tmap ${V}_slots {\n\t}\n\tchain ${V} {\n\t}\n}\n`,
    );
  /** The rules the plan writes into `chain`, after its flush. */
  const rulesOf = (lines: readonly string[], chain: string): string[] =>
    lines.filter((l) => l.startsWith(`add rule inet l4t_nat ${chain} `));

  test('a base chain deleted or flushed is declared again, flushed and written whole; the others are not touched', () => {
    const state = read({ without: ['postrouting'], flushed: ['prerouting'] });
    expect([...(state.base?.chains ?? [])].sort()).toEqual(['postrouting', 'prerouting']);
    const lines = planNat(state, norm(nat(2)), 'l4t_nat').lines;
    const created = planNat(null, norm(nat(2)), 'l4t_nat').lines.join('\n');
    for (const [chain, hook, n] of [
      ['postrouting', 'type nat hook postrouting priority srcnat; policy accept;', 2],
      ['prerouting', 'type nat hook prerouting priority dstnat; policy accept;', 4],
    ] as const) {
      const add = lines.indexOf(`add chain inet l4t_nat ${chain} { ${hook} }`);
      expect(add, chain).toBeGreaterThanOrEqual(0);
      expect(lines[add + 1], chain).toBe(`flush chain inet l4t_nat ${chain}`);
      const rules = rulesOf(lines, chain);
      expect(rules, chain).toHaveLength(n);
      // The rules of a new table, in its order.
      for (const r of rules) expect(created, r).toContain(`    ${r.replace(`add rule inet l4t_nat ${chain} `, '')}`);
    }
    expect(rulesOf(lines, 'prerouting')[0]).toBe(
      'add rule inet l4t_nat prerouting ip daddr . meta l4proto . th dport vmap @natvips4',
    );
    for (const chain of ['forward', 'source', 'served'])
      expect(lines.join('\n')).not.toContain(`chain inet l4t_nat ${chain}`);
    // Its objects are declared first (kept if there), before a rule names them.
    const map = lines.indexOf(
      'add map inet l4t_nat natvips4 { type ipv4_addr . inet_proto . inet_service : verdict; }',
    );
    expect(map).toBeGreaterThanOrEqual(0);
    expect(map).toBeLessThan(lines.indexOf('flush chain inet l4t_nat prerouting'));
    expect(lines).toContain('add counter inet l4t_nat nat_drop_port');
    // Planned from the model of that write, nothing is written again.
    const next = planNat(state, norm(nat(2)), 'l4t_nat').next as NatState;
    expect(planNat(next, norm(nat(2)), 'l4t_nat').lines).toEqual([]);
  });

  test('a base chain with a rule added by hand, and a base object deleted, are written again', () => {
    const extra = parseNatSkeleton(
      `table inet l4t_nat {\n${natBaseListing().replace(
        '\t\ttype filter hook forward priority filter; policy accept;\n',
        '\t\ttype filter hook forward priority filter; policy accept;\n\t\tip daddr 198.51.100.9 accept\n',
      )}}\n`,
    );
    expect([...(extra.base?.chains ?? [])]).toEqual(['forward']);
    expect(rulesOf(planNat(extra, norm(nat(2)), 'l4t_nat').lines, 'forward')).toHaveLength(2);
    const noMap = read({ without: ['natvips6', 'prerouting'] });
    expect([...(noMap.base?.objects ?? [])]).toEqual(['natvips6']);
    expect(planNat(noMap, norm(nat(2)), 'l4t_nat').lines).toContain(
      'add map inet l4t_nat natvips6 { type ipv6_addr . inet_proto . inet_service : verdict; }',
    );
  });

  test('a table as written has no base drift: an adopted one rewrites its VIPs only', () => {
    const state = read({});
    expect(state.base).toBeUndefined();
    const lines = planNat(state, norm(nat(2)), 'l4t_nat').lines;
    expect(lines.join('\n')).not.toMatch(
      /(add|flush) chain inet l4t_nat (prerouting|postrouting|forward|source|served)/,
    );
    expect(lines.join('\n')).not.toMatch(/add (map|set|counter) inet l4t_nat nat/);
  });
});

// A verdict changed by hand (`nft add element` refused, so: delete, then add `… : drop`) reads as the element missing;
// `add element` of its key with the jump was refused (File exists), the whole transaction, at every verify.
describe('nat plan - elements whose value was changed by hand', () => {
  const V = 'v_c6336401_tcp_443';
  const E = '198.51.100.1 . tcp . 443';
  const skeleton = (listed: Record<string, string[]>, extra = ''): NatState => ({
    ...parseNatSkeleton(
      `table inet l4t_nat {\n${natBaseListing()}\tct timeout to_tcp4_300_10_10 {\n\t}\n` +
        `\tcounter ${V} {\n\t}\n\tmap ${V}_slots {\n\t}\n${extra}}\n`,
    ),
    elements: new Map(Object.entries(listed).map(([set, es]) => [set, new Set(es)])),
  });
  const chain = `\tchain ${V} {\n\t}\n`;
  const srcChain = `\tchain ${V}_src {\n\t\tip saddr != { 10.1.0.0/16 } counter name "nat_drop_source" drop comment "l4fleet nat src=x"\n\t}\n`;

  test("a desired VIP's natvips and natsrc keys listed with another verdict are deleted, then added with the jump", () => {
    const state = skeleton(
      { natvips4: [`${E} : drop`], natserved4: [E], nataddrs4: ['198.51.100.1'], natsrc4: [`${E} : accept`] },
      chain + srcChain,
    );
    const lines = planNat(state, norm(nat(2, { sourceRanges: ['10.1.0.0/16'] })), 'l4t_nat').lines;
    for (const [set, value] of [
      ['natvips4', `jump ${V}`],
      ['natsrc4', `jump ${V}_src`],
    ] as const) {
      const add = lines.indexOf(`add element inet l4t_nat ${set} { ${E} : ${value} }`);
      expect(add, set).toBeGreaterThan(0);
      expect(lines[add - 1], set).toBe(`delete element inet l4t_nat ${set} { ${E} }`);
      expect(
        lines.filter((l) => l.includes(` ${set} `)),
        set,
      ).toHaveLength(2);
    }
    // Listed as written: nothing deleted, nothing added.
    const whole = skeleton({ natvips4: [`${E} : jump ${V}`], natserved4: [E], nataddrs4: ['198.51.100.1'] }, chain);
    expect(planNat(whole, norm(nat(2)), 'l4t_nat').lines.join('\n')).not.toMatch(/element inet l4t_nat nat/);
    // Absent: added, with nothing deleted (`delete` of a key absent refuses the transaction too).
    const lines2 = planNat(skeleton({}, chain), norm(nat(2)), 'l4t_nat').lines;
    expect(lines2).toContain(`add element inet l4t_nat natvips4 { ${E} : jump ${V} }`);
    expect(lines2.join('\n')).not.toContain('delete element');
  });

  test('a removed VIP has its listed keys deleted by key whatever their value, its absent ones left alone', () => {
    const other = nat(2, { vip: { address: '198.51.100.2', port: 443, protocol: 'tcp' } });
    const state = skeleton({ natvips4: [`${E} : drop`], natserved4: [E] }, chain + srcChain);
    const lines = planNat(state, norm(other), 'l4t_nat').lines;
    expect(lines).toContain(`delete element inet l4t_nat natvips4 { ${E} }`);
    expect(lines).toContain(`delete element inet l4t_nat natserved4 { ${E} }`);
    expect(lines.join('\n')).not.toMatch(new RegExp(`add element inet l4t_nat (natvips4|natserved4|natsrc4) \\{ ${E}`));
    // Not listed: natsrc4 and nataddrs4 are not deleted (the kernel would refuse the transaction).
    expect(lines.join('\n')).not.toMatch(/delete element inet l4t_nat (natsrc4|nataddrs4) \{ 198\.51\.100\.1 /);
  });

  test("an orphan's natvips key listed with another verdict is deleted; a desired orphan's is replaced once", () => {
    const state = skeleton({ natvips4: [`${E} : drop`], natserved4: [E], nataddrs4: ['198.51.100.1'] });
    expect(state.orphans?.has(V)).toBe(true);
    const other = nat(2, { vip: { address: '198.51.100.2', port: 443, protocol: 'tcp' } });
    const gone = planNat(state, norm(other), 'l4t_nat').lines;
    expect(gone).toContain(`delete element inet l4t_nat natvips4 { ${E} }`);
    expect(gone.join('\n')).not.toContain(`add element inet l4t_nat natvips4 { ${E}`);
    const back = planNat(state, norm(nat(2)), 'l4t_nat').lines;
    expect(back.filter((l) => l === `delete element inet l4t_nat natvips4 { ${E} }`)).toHaveLength(1);
    const add = back.indexOf(`add element inet l4t_nat natvips4 { ${E} : jump ${V} }`);
    expect(back[add - 1]).toBe(`delete element inet l4t_nat natvips4 { ${E} }`);
  });
});

// `nft add element inet T nataddrs4 { 198.51.100.9 }` (every packet to that address dropped by the node), or a natvips,
// natserved or natsrc key of a VIP the driver does not have: the plan planned the VIPs' own elements only, so neither a
// restart nor a verify deleted them, and the listing after the write (verify's reference) kept them.
describe('nat plan - elements added by hand for what no VIP has', () => {
  const V = 'v_c6336401_tcp_443';
  const E = '198.51.100.1 . tcp . 443';
  const S = '198.51.100.9 . tcp . 80';
  const S6 = '2001:db8::9 . udp . 53';
  const AS_WRITTEN = { natvips4: [`${E} : jump ${V}`], natserved4: [E], nataddrs4: ['198.51.100.1'] };
  const read = (extra: Record<string, string[]>, chains = `\tchain ${V} {\n\t}\n`): NatState => {
    const listed: Record<string, string[]> = { ...AS_WRITTEN };
    for (const [set, es] of Object.entries(extra)) listed[set] = [...(listed[set] ?? []), ...es];
    return {
      ...parseNatSkeleton(
        `table inet l4t_nat {\n${natBaseListing()}\tct timeout to_tcp4_300_10_10 {\n\t}\n` +
          `\tcounter ${V} {\n\t}\n\tmap ${V}_slots {\n\t}\n${chains}}\n`,
      ),
      elements: new Map(Object.entries(listed).map(([set, es]) => [set, new Set(es)])),
    };
  };
  const elementLines = (lines: readonly string[]): string[] => lines.filter((l) => / element inet l4t_nat nat/.test(l));

  test.each([
    ['nataddrs4', '198.51.100.9', '198.51.100.9'],
    ['natvips4', `${S} : jump ${V}`, S],
    ['natvips4', `${S} : accept`, S],
    ['natserved4', '198.51.100.1 . tcp . 8080', '198.51.100.1 . tcp . 8080'],
    ['natsrc4', `${S} : drop`, S],
    // The VIP's own key, but it has no sourceRanges: its connections dropped by a verdict the driver never wrote.
    ['natsrc4', `${E} : drop`, E],
    ['nataddrs6', '2001:db8::9', '2001:db8::9'],
    ['natvips6', `${S6} : drop`, S6],
    ['natserved6', S6, S6],
    ['natsrc6', `${S6} : accept`, S6],
  ])('a %s element `%s` is deleted by its key, before the VIPs, whose elements are untouched', (set, element, key) => {
    const lines = planNat(read({ [set]: [element] }), norm(nat(2)), 'l4t_nat').lines;
    expect(elementLines(lines)).toEqual([`delete element inet l4t_nat ${set} { ${key} }`]);
    expect(lines.indexOf(`delete element inet l4t_nat ${set} { ${key} }`)).toBeLessThan(
      lines.indexOf(`add counter inet l4t_nat ${V}`),
    );
    // As written, nothing of the kind.
    expect(elementLines(planNat(read({}), norm(nat(2)), 'l4t_nat').lines)).toEqual([]);
  });

  // One jumping to a chain the plan deletes (a VIP removed) would refuse the whole transaction: deleted before it.
  test("one jumping to a removed VIP's chain is deleted before that chain", () => {
    const other = nat(2, { vip: { address: '198.51.100.2', port: 443, protocol: 'tcp' } });
    const lines = planNat(read({ natvips4: [`${S} : jump ${V}`] }), norm(other), 'l4t_nat').lines;
    const stray = lines.indexOf(`delete element inet l4t_nat natvips4 { ${S} }`);
    expect(stray).toBeGreaterThanOrEqual(0);
    expect(stray).toBeLessThan(lines.indexOf(`delete chain inet l4t_nat ${V}`));
    expect(lines).toContain(`delete element inet l4t_nat natvips4 { ${E} }`);
  });

  // A desired VIP's key is the plan's to write: a natvips key with another verdict is replaced once (putListed), and a
  // natsrc key of a VIP given sourceRanges, whose `add` would be refused (File exists), deleted first.
  test("a desired VIP's keys listed with another verdict are deleted once, then written", () => {
    const N = '198.51.100.2 . tcp . 443';
    const added = nat(2, {
      vip: { address: '198.51.100.2', port: 443, protocol: 'tcp' },
      sourceRanges: ['10.1.0.0/16'],
    });
    const state = read({ natvips4: [`${N} : drop`], natsrc4: [`${N} : accept`], nataddrs4: ['198.51.100.2'] });
    const lines = planNat(state, norm(nat(2), added), 'l4t_nat').lines;
    for (const [set, value] of [
      ['natvips4', 'jump v_c6336402_tcp_443'],
      ['natsrc4', 'jump v_c6336402_tcp_443_src'],
    ] as const) {
      expect(lines.filter((l) => l === `delete element inet l4t_nat ${set} { ${N} }`)).toHaveLength(1);
      const del = lines.indexOf(`delete element inet l4t_nat ${set} { ${N} }`);
      expect(del, set).toBeLessThan(lines.indexOf(`add element inet l4t_nat ${set} { ${N} : ${value} }`));
    }
    expect(lines.join('\n')).not.toContain('delete element inet l4t_nat nataddrs4');
  });

  test("an orphan's elements are deleted once, as an orphan's", () => {
    const state = read({ natsrc4: [`${E} : accept`] }, `\tchain ${V}_src {\n\t}\n`);
    expect(state.orphans?.get(V)?.source).toBe(true);
    const other = nat(2, { vip: { address: '198.51.100.2', port: 443, protocol: 'tcp' } });
    const lines = planNat(state, norm(other), 'l4t_nat').lines;
    for (const [set, key] of [
      ['natvips4', E],
      ['natserved4', E],
      ['natsrc4', E],
      ['nataddrs4', '198.51.100.1'],
    ])
      expect(lines.filter((l) => l === `delete element inet l4t_nat ${set} { ${key} }`)).toHaveLength(1);
  });
});
