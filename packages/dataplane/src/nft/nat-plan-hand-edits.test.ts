/**
 * The NAT plan after hand edits the read sees (nat-orphans.ts): routing elements whose verdict was changed.
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
