import { parseFleet } from '@l4fleet/config';
import { buildTable } from '@l4fleet/maglev';
import { describe, expect, test } from 'vitest';
import { DataPlaneError } from '../errors.js';
import type { VipTable } from '../types.js';
import { validateDesired } from '../validate.js';
import { TEST_LAYOUT } from './layout.test-helper.js';
import { natBaseListing } from './nat-base.test-helper.js';
import { type NatState, planNat } from './nat-plan.js';
import { parseNatSkeleton } from './nat-table.js';
import { planApply } from './plan.js';
import { vipRules } from './ruleset.js';

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
const applied = (...t: VipTable[]): NatState => planNat(null, norm(...t), 'l4t_nat').next as NatState;

function refusal(fn: () => unknown): DataPlaneError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(DataPlaneError);
    return err as DataPlaneError;
  }
  throw new Error('expected a DataPlaneError');
}

describe('nat plan', () => {
  test('a new VIP: the table, a timeout object named by the profile, rules with DNAT to member address and port', () => {
    const p = planNat(null, norm(nat(2)), 'l4t_nat');
    const text = p.lines.join('\n');
    expect(p.tableCreated).toBe(true);
    expect(text).toContain('table inet l4t_nat {');
    expect(text).toContain(
      'add ct timeout inet l4t_nat to_tcp4_300_10_10 { protocol tcp; l3proto ip; policy = { established: 300, syn_sent: 10, syn_recv: 10, fin_wait: 10, close_wait: 10, last_ack: 10, time_wait: 10, close: 10 }; }',
    );
    expect(text).toContain('ct status dnat ct original ip daddr @nataddrs4 masquerade');
    expect(text).toMatch(
      /add rule inet l4t_nat v_\w+ tcp flags & \(syn \| ack\) != syn counter name "nat_drop_expired" drop/,
    );
    expect(text).toMatch(/meta l4proto tcp dnat ip to meta mark map @v_\w+_slots/);
    expect(text).toContain(': 198.18.0.1 . 8443');
    expect(text).toContain('add element inet l4t_nat natvips4 { 198.51.100.1 . tcp . 443 : jump v_c6336401_tcp_443 }');
  });

  test('the same state again: nothing to write; a changed member: only its slots, delete then add', () => {
    const before = applied(nat(3));
    expect(planNat(before, norm(nat(3)), 'l4t_nat').lines).toEqual([]);
    const after = nat(3, {});
    const moved = { ...after, backends: after.backends.map((b, i) => (i === 1 ? { ...b, port: 9443 } : b)) };
    const p = planNat(before, norm(moved), 'l4t_nat');
    expect(p.lines.every((l) => /^(delete|add) element inet l4t_nat v_\w+_slots /.test(l))).toBe(true);
    expect(p.lines.join('\n')).toContain('198.18.0.2 . 9443');
    expect(p.vips[0]).toMatchObject({ action: 'updated', rulesReplaced: false });
  });

  test('a new profile: a new timeout object and the rules rewritten; reset rejects with a TCP reset', () => {
    const before = applied(nat(2));
    const profile = { idleTimeoutS: 60, tcpHandshakeTimeoutS: 5, tcpCloseTimeoutS: 5, onTimeout: 'reset' as const };
    const text = planNat(before, norm(nat(2, { profile })), 'l4t_nat').lines.join('\n');
    expect(text).toContain('add ct timeout inet l4t_nat to_tcp4_60_5_5 ');
    expect(text).toContain('counter name "nat_drop_expired" reject with tcp reset');
    expect(text).toContain('ct timeout set "to_tcp4_60_5_5"');
    expect(text).not.toContain('delete ct timeout');
  });

  test('draining: the VIP chain drops every new connection before its DNAT, the slots stay; enabled: the rules again', () => {
    const before = applied(nat(2));
    const p = planNat(before, norm(nat(2, { draining: true })), 'l4t_nat');
    const chain = (lines: readonly string[]) =>
      lines.filter((l) => l.startsWith('add rule inet l4t_nat v_')).map((l) => l.replace(/^add rule \S+ \S+ \S+ /, ''));
    const rules = chain(p.lines);
    const refuse = rules.indexOf('counter name "nat_drop_no_backend" drop');
    expect(refuse).toBeGreaterThan(0);
    expect(refuse).toBeLessThan(rules.findIndex((r) => r.startsWith('ct timeout set')));
    expect(rules[0]).toContain('on=drop draining"');
    expect(p.lines.some((l) => /element .*_slots/.test(l))).toBe(false);
    expect(p.vips[0]).toMatchObject({ action: 'updated', rulesReplaced: true, slotsChanged: 0 });
    const back = chain(planNat(p.next, norm(nat(2)), 'l4t_nat').lines);
    expect(back.indexOf('counter name "nat_drop_no_backend" drop')).toBe(back.length - 1); // the no-member rule only
    expect(back[0]).toContain('on=drop"');
  });

  test('udp over IPv6: unreplied and replied timeouts, no TCP rule, dnat ip6', () => {
    const backends = [{ name: 'm0', address: '2001:db8::10', port: 5353 }];
    const t = nat(1, {
      vip: { address: '2001:db8:9::1', port: 53, protocol: 'udp' },
      backends,
      slots: buildTable(backends, 13),
      profile: { idleTimeoutS: 5, onTimeout: 'drop' },
    });
    const text = planNat(null, norm(t), 'l4t_nat').lines.join('\n');
    expect(text).toContain('to_udp6_5 { protocol udp; l3proto ip6; policy = { unreplied: 5, replied: 5 }; }');
    expect(text).not.toContain('tcp flags');
    expect(text).toContain('meta l4proto udp dnat ip6 to meta mark map');
  });

  test('the last NAT VIP gone: the table is deleted', () => {
    const p = planNat(applied(nat(2)), [], 'l4t_nat');
    expect(p.lines).toEqual(['delete table inet l4t_nat']);
    expect(p.next).toBeNull();
  });

  test('a removed VIP whose address stays: every packet to its port drops (before conntrack), not only new connections', () => {
    const v443 = nat(2);
    const v80 = nat(2, { vip: { address: '198.51.100.1', port: 80, protocol: 'tcp' } });
    const created = planNat(null, norm(v443, v80), 'l4t_nat');
    const text = created.lines.join('\n');
    // A filter chain at the raw priority sees every packet (the nat chains only a connection's first), so conntrack
    // stops translating the established connections of a port no longer served.
    expect(text).toContain('chain served {\n    type filter hook prerouting priority raw; policy accept;');
    expect(text).toContain(
      'ip daddr @nataddrs4 meta l4proto { tcp, udp } ip daddr . meta l4proto . th dport != @natserved4 counter name "nat_drop_port" drop',
    );
    expect(text).toContain('add element inet l4t_nat natserved4 { 198.51.100.1 . tcp . 443 }');
    expect(text).toContain('add element inet l4t_nat natserved4 { 198.51.100.1 . tcp . 80 }');
    const removed = planNat(created.next, norm(v443), 'l4t_nat').lines;
    expect(removed).toContain('delete element inet l4t_nat natserved4 { 198.51.100.1 . tcp . 80 }');
    expect(removed).not.toContain('delete element inet l4t_nat nataddrs4 { 198.51.100.1 }');
    expect(planNat(applied(v443), norm(v443), 'l4t_nat').lines).toEqual([]);
  });

  test('a table written before the served filter gets it, with an element per VIP, not a new table', () => {
    const skeleton = parseNatSkeleton(
      `table inet l4t_nat {\n${natBaseListing({ without: ['served', 'natserved4', 'natserved6'] })}` +
        '\tct timeout to_tcp4_300_10_10 {\n\t}\n\tchain v_c6336401_tcp_443 {\n\t}\n}\n',
    );
    expect(skeleton.servedChain).toBe(false);
    // Its upgrade writes the chain with its rules: not one to rewrite (its sets are declared again, kept if there).
    expect([...(skeleton.base?.chains ?? [])]).toEqual([]);
    const text = planNat(skeleton, norm(nat(2)), 'l4t_nat').lines.join('\n');
    expect(text).not.toContain('delete table');
    expect(text).toContain('chain served {');
    expect(text).toContain('add element inet l4t_nat natserved4 { 198.51.100.1 . tcp . 443 }');
    const served = parseNatSkeleton(`table inet l4t_nat {\n${natBaseListing()}\tchain v_c6336401_tcp_443 {\n\t}\n}\n`);
    expect(served.servedChain).toBe(true);
    expect(planNat(served, norm(nat(2)), 'l4t_nat').lines.join('\n')).not.toContain('natserved4');
  });

  test('an adopted table (after a restart) is rewritten once: rules flushed, slots refilled, no new chain', () => {
    const skeleton = parseNatSkeleton(
      `table inet l4t_nat {\n${natBaseListing()}\tct timeout to_tcp4_300_10_10 {\n\t}\n` +
        '\tchain v_c6336401_tcp_443 {\n\t}\n}\n',
    );
    expect([...skeleton.vips.keys()]).toEqual(['v_c6336401_tcp_443']);
    const text = planNat(skeleton, norm(nat(2)), 'l4t_nat').lines.join('\n');
    expect(text).toContain('flush chain inet l4t_nat v_c6336401_tcp_443');
    expect(text).toContain('flush map inet l4t_nat v_c6336401_tcp_443_slots');
    expect(text).not.toContain('add ct timeout');
    expect(text).not.toContain('add chain');
  });

  const V = 'v_c6336401_tcp_443';
  const adoptedText = (extra = ''): string =>
    `table inet l4t_nat {\n${natBaseListing()}\tct timeout to_tcp4_300_10_10 {\n\t}\n` +
    `\tcounter ${V} {\n\t}\n\tmap ${V}_slots {\n\t}\n\tchain ${V} {\n\t}\n${extra}}\n`;
  const srcChain = (ranges: string): string =>
    `\tchain ${V}_src {\n\t\tip saddr != { ${ranges} } counter name "nat_drop_source" drop comment "${
      planNat(null, norm(nat(2, { sourceRanges: [ranges] })), 'l4t_nat')
        .lines.find((l) => l.includes(`add rule inet l4t_nat ${V}_src`))
        ?.match(/comment "([^"]*)"/)?.[1]
    }"\n\t}\n`;

  // Its elements may have been deleted by hand (the read has names only): natvips missing drops every new connection,
  // natserved every packet, natsrc leaves the ranges unenforced. Adding one that is there keeps it.
  test("an adopted VIP's natvips, natserved, nataddrs and natsrc elements the read lacks are written again", () => {
    const skeleton = parseNatSkeleton(adoptedText(srcChain('10.1.0.0/16')));
    expect(skeleton.vips.get(V)?.sourceSignature).toMatch(/^l4fleet nat src=/);
    const desired = norm(nat(2, { sourceRanges: ['10.1.0.0/16'] }));
    const added = [
      `add element inet l4t_nat natvips4 { 198.51.100.1 . tcp . 443 : jump ${V} }`,
      'add element inet l4t_nat natserved4 { 198.51.100.1 . tcp . 443 }',
      'add element inet l4t_nat nataddrs4 { 198.51.100.1 }',
      `add element inet l4t_nat natsrc4 { 198.51.100.1 . tcp . 443 : jump ${V}_src }`,
    ];
    const lines = planNat({ ...skeleton, elements: new Map() }, desired, 'l4t_nat').lines;
    for (const a of added) expect(lines).toContain(a);
    expect(lines).not.toContain(`add chain inet l4t_nat ${V}_src`);
    // All listed: none is written again.
    const all = new Map(
      added.map((a) => {
        const m = /^add element inet l4t_nat (\S+) \{ (.*) \}$/.exec(a) as RegExpExecArray;
        return [m[1] as string, new Set([m[2] as string])];
      }),
    );
    const kept = planNat({ ...skeleton, elements: all }, desired, 'l4t_nat').lines;
    for (const a of added) expect(kept).not.toContain(a);
    // Planned from the model of that write, nothing is written again.
    const next = planNat({ ...skeleton, elements: new Map() }, desired, 'l4t_nat').next as NatState;
    expect(planNat(next, desired, 'l4t_nat').lines).toEqual([]);
  });

  // The chain flushed by hand, then its map deleted: `add rule ... map @..._slots` was refused at every verify.
  test("an adopted VIP's counter and slot map are added (kept if there) before its rules name them", () => {
    const lines = planNat(parseNatSkeleton(adoptedText()), norm(nat(2)), 'l4t_nat').lines;
    const at = (s: string): number => lines.findIndex((l) => l.startsWith(s));
    expect(at(`add counter inet l4t_nat ${V}`)).toBeGreaterThanOrEqual(0);
    expect(at(`add map inet l4t_nat ${V}_slots `)).toBeGreaterThanOrEqual(0);
    expect(at(`add map inet l4t_nat ${V}_slots `)).toBeLessThan(at(`flush chain inet l4t_nat ${V}`));
    expect(at(`add counter inet l4t_nat ${V}`)).toBeLessThan(at(`flush chain inet l4t_nat ${V}`));
  });

  // A removed adopted VIP's elements may be gone already: `delete` of one absent refused the whole transaction.
  test('an adopted VIP removed has its elements, map and counter deleted whether there or not', () => {
    const other = nat(2, { vip: { address: '198.51.100.2', port: 443, protocol: 'tcp' } });
    const lines = planNat(parseNatSkeleton(adoptedText(srcChain('10.1.0.0/16'))), norm(other), 'l4t_nat').lines;
    for (const [set, e] of [
      ['natvips4', `198.51.100.1 . tcp . 443 : jump ${V}`],
      ['natserved4', '198.51.100.1 . tcp . 443'],
      ['natsrc4', `198.51.100.1 . tcp . 443 : jump ${V}_src`],
      ['nataddrs4', '198.51.100.1'],
    ] as const) {
      const add = lines.indexOf(`add element inet l4t_nat ${set} { ${e} }`);
      expect(add, set).toBeGreaterThanOrEqual(0);
      expect(lines[add + 1], set).toBe(`delete element inet l4t_nat ${set} { ${e.split(' : ')[0]} }`);
    }
    expect(lines.indexOf(`add map inet l4t_nat ${V}_slots { type mark : ipv4_addr . inet_service; }`)).toBeLessThan(
      lines.indexOf(`delete map inet l4t_nat ${V}_slots`),
    );
    expect(lines.indexOf(`add counter inet l4t_nat ${V}`)).toBeLessThan(
      lines.indexOf(`delete counter inet l4t_nat ${V}`),
    );
  });

  // The natvips element, then the chain deleted by hand: the map, counter and source chain were left; written again as
  // new, `add map` kept the old elements ('File exists' on every slot whose member differs, forever).
  const orphanText = (): string =>
    `table inet l4t_nat {\n${natBaseListing()}\tct timeout to_tcp4_300_10_10 {\n\t}\n` +
    `\tcounter ${V} {\n\t}\n\tmap ${V}_slots {\n\t}\n${srcChain('10.1.0.0/16')}}\n`;

  test("a desired VIP's objects left without its chain are deleted first, its counter kept, the new map emptied", () => {
    const skeleton = parseNatSkeleton(orphanText());
    expect([...skeleton.vips.keys()]).toEqual([]);
    expect(skeleton.orphans?.get(V)).toMatchObject({ slots: true, counter: true, source: true });
    const lines = planNat(skeleton, norm(nat(2)), 'l4t_nat').lines;
    const at = (s: string): number => lines.indexOf(s);
    const srcElement = `198.51.100.1 . tcp . 443 : jump ${V}_src`;
    expect(at(`add element inet l4t_nat natsrc4 { ${srcElement} }`)).toBe(0);
    expect(lines.slice(1, 4)).toEqual([
      'delete element inet l4t_nat natsrc4 { 198.51.100.1 . tcp . 443 }',
      `delete chain inet l4t_nat ${V}_src`,
      `delete map inet l4t_nat ${V}_slots`,
    ]);
    expect(lines).not.toContain(`delete counter inet l4t_nat ${V}`);
    expect(at(`flush map inet l4t_nat ${V}_slots`)).toBe(
      at(`add map inet l4t_nat ${V}_slots { type mark : ipv4_addr . inet_service; }`) + 1,
    );
    expect(lines).toContain(`add element inet l4t_nat natvips4 { 198.51.100.1 . tcp . 443 : jump ${V} }`);
  });

  test("an undesired VIP's objects left without its chain are deleted: map, counter, source, served and address", () => {
    const other = nat(2, { vip: { address: '198.51.100.2', port: 443, protocol: 'tcp' } });
    const lines = planNat(parseNatSkeleton(orphanText()), norm(other), 'l4t_nat').lines;
    expect(lines).toContain(`delete map inet l4t_nat ${V}_slots`);
    expect(lines).toContain(`delete counter inet l4t_nat ${V}`);
    expect(lines).toContain(`delete chain inet l4t_nat ${V}_src`);
    for (const [set, e] of [
      ['natserved4', '198.51.100.1 . tcp . 443'],
      ['nataddrs4', '198.51.100.1'],
    ] as const) {
      const add = lines.indexOf(`add element inet l4t_nat ${set} { ${e} }`);
      expect(add, set).toBeGreaterThanOrEqual(0);
      expect(lines[add + 1], set).toBe(`delete element inet l4t_nat ${set} { ${e} }`);
    }
    expect(lines.join('\n')).not.toContain(`add counter inet l4t_nat ${V}`);
  });
});

describe('nat validation', () => {
  test('a driver that does not take nat refuses it, naming the VIP and why (the bpf driver passes no list)', () => {
    const err = refusal(() => validateDesired([nat(2)], { requireSamePort: true }));
    expect(err.code).toBe('FORWARDING_UNSUPPORTED');
    expect(err.message).toBe(
      'vip 198.51.100.1:443/tcp: forwarding "nat" is not supported by this data plane (supported: l2 | ipip | gre | gue; nat needs connection tracking: use the nftables data plane)',
    );
  });

  test('member ports may differ from the VIP port under nat, not under l2', () => {
    expect(norm(nat(2))).toHaveLength(1);
    expect(refusal(() => norm(nat(2, { forwarding: 'l2' }))).code).toBe('BACKEND_PORT_MISMATCH');
  });

  test('a bad profile is refused naming the field and the value', () => {
    const bad = { idleTimeoutS: 0, onTimeout: 'drop' as const };
    expect(refusal(() => norm(nat(2, { profile: bad }))).message).toBe(
      'vip 198.51.100.1:443/tcp: profile.idleTimeoutS: 0 is not a timeout in seconds (1-604800)',
    );
    const udp = nat(2, { vip: { address: '198.51.100.1', port: 53, protocol: 'udp' } });
    expect(refusal(() => norm({ ...udp, profile: { idleTimeoutS: 5, onTimeout: 'reset' } })).message).toBe(
      'vip 198.51.100.1:53/udp: profile.onTimeout: "reset" applies only to tcp VIPs',
    );
  });

  // The data plane validates its whole input: a TCP field on a udp VIP is an error upstream (parseFleet refuses it),
  // not a value to ignore, even one out of range.
  test.each([
    ['tcpHandshakeTimeoutS', 5, '5'],
    ['tcpCloseTimeoutS', 99_999, '99999'],
  ])('a udp VIP with profile.%s is refused naming the field and the value', (field, value, shown) => {
    const udp = nat(2, { vip: { address: '198.51.100.1', port: 53, protocol: 'udp' } });
    const err = refusal(() => norm({ ...udp, profile: { idleTimeoutS: 5, onTimeout: 'drop', [field]: value } }));
    expect(err.code).toBe('VIP_INVALID');
    expect(err.message).toBe(`vip 198.51.100.1:53/udp: profile.${field}: ${shown} applies only to tcp VIPs`);
  });

  test("a udp VIP's profile as parseFleet stores it, default or set, is accepted", () => {
    const fleet = parseFleet({
      hashSeed: 1,
      pools: [{ name: 'dns', forwarding: 'nat', members: [{ address: '198.18.0.1', port: 5353 }] }],
      vips: [
        { address: '198.51.100.1', port: 53, protocol: 'udp', pool: 'dns' },
        { address: '198.51.100.1', port: 54, protocol: 'udp', pool: 'dns', profile: { idleTimeoutS: 9 } },
      ],
    });
    for (const vip of fleet.vips) {
      const udp = nat(2, { vip: { address: vip.address, port: vip.port, protocol: vip.protocol } });
      expect(norm({ ...udp, ...(vip.profile ? { profile: vip.profile } : {}) })[0]?.profile).toMatchObject({
        idleTimeoutS: vip.port === 53 ? 30 : 9,
        onTimeout: 'drop',
      });
    }
  });
});

describe('direct return and the profile', () => {
  test("a VIP's idle timeout other than the layout default becomes its flow-affinity timeout (and its signature)", () => {
    const layout = TEST_LAYOUT;
    const l2 = (profile?: VipTable['profile']) =>
      nat(2, {
        forwarding: 'l2',
        backends: nat(2).backends.map((b) => ({ ...b, port: 443 })),
        ...(profile ? { profile } : {}),
      });
    const plain = planApply(null, norm(l2()), layout);
    const custom = planApply(null, norm(l2({ idleTimeoutS: 45, onTimeout: 'drop' })), layout);
    const text = (p: typeof plain) => p.ops.map((o) => (o.kind === 'nft' ? o.text : '')).join('\n');
    expect(text(plain)).toContain('timeout 300s');
    expect(text(plain)).toContain('comment "l4fleet vip hash=5-tuple seed=7 size=13 syn=table"');
    expect(text(custom)).toContain('timeout 45s');
    expect(text(custom)).toContain('size=13 idle=45 syn=table"');
    // A table without a profile keeps the driver's flow timeout (flowTimeoutTcpS here 7 s).
    expect(text(planApply(null, norm(l2()), { ...layout, flowTimeoutTcpS: 7 }))).toContain('timeout 7s');
    expect(
      vipRules({ key: 'v', family: 4, protocol: 'udp', hash: '5-tuple', seed: 1, size: 13 }, layout).join(),
    ).toContain('timeout 30s');
  });
});
