import { describe, expect, test } from 'vitest';
import type { Exec } from '../exec.js';
import { echoRule } from './echo.js';
import { type KernelVip, sameRules } from './kernel-state.js';
import { LISTED_FORWARD, LISTED_INGRESS, TEST_LAYOUT } from './layout.test-helper.js';
import { findLeftovers, type WithMissing } from './leftovers.js';
import { baseChainRules, forwardChainRules, layoutSignature, type VipShape, vipRules } from './ruleset.js';
import { parseSkeleton, readKernelState, tableBlock } from './state.js';

describe('parseSkeleton', () => {
  test('reads the layout comment and each VIP chain signature', () => {
    const text = [
      'table netdev l4fleet {',
      '\tcomment "l4fleet layout=1 dev=eth0"',
      '\tchain ingress {',
      '\t\ttype filter hook ingress device "eth0" priority filter; policy accept;',
      '\t}',
      '\tchain v_c0000201_tcp_80 {',
      '\t\tcounter name "v_c0000201_tcp_80" comment "l4fleet vip hash=5-tuple seed=7 size=13"',
      '\t}',
      '\tchain v_20010db8000000000000000000000001_udp_53 {',
      '\t}',
      '}',
    ].join('\n');
    const s = parseSkeleton(text);
    expect(s.layoutSignature).toBe('l4fleet layout=1 dev=eth0');
    expect([...s.chains]).toEqual([
      ['v_c0000201_tcp_80', 'l4fleet vip hash=5-tuple seed=7 size=13'],
      ['v_20010db8000000000000000000000001_udp_53', ''],
    ]);
  });
});

describe('parseSkeleton - rules per VIP chain', () => {
  test("counts each VIP chain's rules (a rule deleted by hand leaves the signature), not a wrapped line", () => {
    const text = [
      'table netdev l4fleet {',
      '\tchain ingress {',
      '\t\ttype filter hook ingress device "eth0" priority filter; policy accept;',
      '\t\tmeta pkttype host accept',
      '\t}',
      '\tchain v_c0000201_tcp_80 {',
      '\t\tip saddr != { 10.0.0.0/8, 198.18.4.7 } counter name "drop_source" drop',
      '\t\tcounter name "v_c0000201_tcp_80" comment "l4fleet vip hash=5-tuple seed=7 size=13"',
      '\t\tmeta mark set jhash ip saddr mod 13 seed 0x7',
      '\t\t\t     continued',
      '\t}',
      '\tchain v_c0000202_tcp_80 {',
      '\t}',
      '}',
    ].join('\n');
    const s = parseSkeleton(text);
    expect([...s.chainRules]).toEqual([
      ['v_c0000201_tcp_80', 3],
      ['v_c0000202_tcp_80', 0],
    ]);
    expect(s.baseRules.get('ingress')).toBe(1);
  });

  // A rule replaced by hand (`nft replace rule`) keeps the number and the signature: the rules' text tells it.
  test("lists each VIP chain's rules, a wrapped one joined to its line", () => {
    const text = [
      'table netdev l4fleet {',
      '\tchain v_c0000201_tcp_80 {',
      '\t\tip saddr != { 10.0.0.0/8,',
      '\t\t\t     198.18.4.7 } counter name "drop_source" drop',
      '\t\tcounter name "v_c0000201_tcp_80" comment "l4fleet vip hash=5-tuple seed=7 size=13"',
      '\t\tdrop',
      '\t}',
      '\tchain v_c0000202_tcp_80 {',
      '\t}',
      '}',
    ].join('\n');
    expect([...parseSkeleton(text).chainTexts]).toEqual([
      [
        'v_c0000201_tcp_80',
        [
          'ip saddr != { 10.0.0.0/8, 198.18.4.7 } counter name "drop_source" drop',
          'counter name "v_c0000201_tcp_80" comment "l4fleet vip hash=5-tuple seed=7 size=13"',
          'drop',
        ].join('\n'),
      ],
      ['v_c0000202_tcp_80', ''],
    ]);
  });
});

describe('tableBlock', () => {
  const table = (name: string, body: string[]): string[] => [`table netdev ${name} {`, ...body, '}'];
  const ours = table('l4fleet', ['\tmap vips4 {', '\t\ttype ipv4_addr . inet_proto . inet_service : verdict', '\t}']);
  const listing = [...table('l4fleet2', ['\tmap other {', '\t}']), ...ours, ...table('x', ['\tset s {', '\t}'])];

  test("cuts the driver's table out of a ruleset listing of several netdev tables", () => {
    expect(tableBlock(listing.join('\n'), 'l4fleet')).toBe(ours.join('\n'));
    expect(parseSkeleton(tableBlock(listing.join('\n'), 'l4fleet') as string).objects).toEqual(new Set(['vips4']));
  });

  test('a listing without the table (none, or others only) has no block', () => {
    expect(tableBlock('', 'l4fleet')).toBeUndefined();
    expect(tableBlock(table('l4fleet2', []).join('\n'), 'l4fleet')).toBeUndefined();
  });
});

describe('findLeftovers', () => {
  test("a VIP's maps, set and counter without its chain are leftovers, by VIP key; a VIP with its chain has none", () => {
    const block = (kind: string, name: string): string[] => [`\t${kind} ${name} {`, '\t}'];
    const whole = 'v_c6120201_tcp_80';
    const left = 'v_c6120202_tcp_80';
    const text = [
      'table netdev l4fleet {',
      ...block('counter', whole),
      ...block('counter', left),
      ...block('counter', 'drop_port'),
      ...block('map', 'flows4_tcp'),
      ...[whole, left].flatMap((k) => [...block('map', `${k}_slots`), ...block('map', `${k}_over`)]),
      ...[whole, left].flatMap((k) => block('set', `${k}_live`)),
      ...block('chain', whole),
      '}',
    ].join('\n');
    const s = parseSkeleton(text);
    expect(findLeftovers(s.objects, s.counters, s.chains)).toEqual(
      new Map([
        [
          left,
          [
            { kind: 'map', name: `${left}_slots` },
            { kind: 'map', name: `${left}_over` },
            { kind: 'set', name: `${left}_live` },
            { kind: 'counter', name: left },
          ],
        ],
      ]),
    );
  });
});

describe('readKernelState', () => {
  const whole = 'v_c6120201_tcp_80';
  const flushed = 'v_c6120202_tcp_80';
  const signature = 'l4fleet vip hash=5-tuple seed=7 size=3 syn=table';
  const [b1, b2] = [0x8000_0001, 0x8000_0002];
  /** A kernel holding `whole` as written and `flushed` with its chain flushed by hand and `deleted` deleted after. */
  function kernel(deleted: string): { exec: Exec; listed: string[] } {
    const elems = new Map<string, unknown[]>([
      [
        'backends4',
        [
          [b1, '198.18.0.1'],
          [b2, '198.18.0.2'],
        ],
      ],
      [
        'backend_counters',
        [
          [b1, 'b_80000001'],
          [b2, 'b_80000002'],
        ],
      ],
      ...[whole, flushed].flatMap((k): [string, unknown[]][] => [
        [
          `${k}_slots`,
          [
            [0, b1],
            [1, b2],
            [2, b1],
          ],
        ],
        [`${k}_over`, [[1, b1]]],
        [`${k}_live`, [b1, b2]],
      ]),
    ]);
    const sets = new Set(['vipaddrs4', 'vipaddrs6', `${whole}_live`, `${flushed}_live`]);
    const objects = ['vips4', 'vips6', 'vipaddrs4', 'vipaddrs6', 'backends4', 'backends6', 'macs', 'backend_counters']
      .concat([whole, flushed].flatMap((k) => [`${k}_slots`, `${k}_over`, `${k}_live`]))
      .filter((o) => o !== deleted);
    const counters = [whole, flushed].filter((c) => c !== deleted);
    const block = (kind: string, name: string, body: string[] = []): string[] => [
      `\t${kind} ${name} {`,
      ...body,
      '\t}',
    ];
    const text = [
      'table netdev l4t {',
      `\tcomment "${layoutSignature(TEST_LAYOUT)}"`,
      ...counters.flatMap((c) => block('counter', c)),
      ...objects.flatMap((o) => block(sets.has(o) ? 'set' : 'map', o)),
      ...block('chain', whole, [`\t\tcounter name "${whole}" comment "${signature}"`]),
      ...block('chain', flushed),
      '}',
    ].join('\n');
    const listed: string[] = [];
    const exec: Exec = async (argv) => {
      const [, flag, , kind, , , name] = argv;
      if (flag === '-t') return { code: 0, stdout: text, stderr: '' };
      listed.push(name as string);
      if (!objects.includes(name as string)) {
        return { code: 1, stdout: '', stderr: `Error: No such file or directory\nlist ${kind} netdev l4t ${name}` };
      }
      const body = { name, elem: elems.get(name as string) ?? [] };
      return {
        code: 0,
        stdout: JSON.stringify({ nftables: [{ metainfo: {} }, { [kind as string]: body }] }),
        stderr: '',
      };
    };
    return { exec, listed };
  }

  test.each([
    ['map', `${flushed}_slots`],
    ['map', `${flushed}_over`],
    ['set', `${flushed}_live`],
    ['counter', flushed],
  ])(
    'a VIP chain flushed by hand and its %s %s deleted - read as incomplete (no rules, no slots), the object named missing, nothing missing listed',
    async (kind, name) => {
      const { exec, listed } = kernel(name);
      const s = await readKernelState(exec, 'l4t', layoutSignature(TEST_LAYOUT));
      const v = s?.vips.get(flushed) as KernelVip & WithMissing;
      expect(v.signature).toBe('');
      expect(v.base).toEqual(new Uint32Array(0));
      expect(v.overlayCount).toBe(0);
      expect(v.missing).toEqual(new Set([name]));
      // The live set as the kernel holds it (the plan deletes and adds against it); none when it is the missing one.
      expect(v.live).toEqual(kind === 'set' ? new Set() : new Set([b1, b2]));
      expect(listed).not.toContain(name);
      // The other VIP is read whole.
      const w = s?.vips.get(whole) as KernelVip & WithMissing;
      expect(w.signature).toBe(signature);
      expect([...w.base]).toEqual([b1, b2, b1]);
      expect([...w.overlay]).toEqual([0, b1, 0]);
      expect(w.missing).toBeUndefined();
      // Its chain as listed: the counter rule alone (the plan compares with its vipRules()).
      expect(w.rules).toBe(1);
      expect(v.rules).toBe(0);
    },
  );

  test('base objects deleted by hand are named (baseMissing), those there are not', async () => {
    const { exec } = kernel('none');
    const s = await readKernelState(exec, 'l4t', layoutSignature(TEST_LAYOUT));
    // The kernel lists no flow map and no base counter; it has the routing, backend and counter maps.
    expect(s?.baseMissing).toContain('flows4_udp');
    expect(s?.baseMissing).toContain('exact6_tcp');
    expect(s?.baseMissing).toContain('flow_table_full');
    expect(s?.baseMissing).not.toContain('vips4');
    expect(s?.baseMissing).not.toContain('backend_counters');
  });
});

// A VIP chain's rules as nft 1.0.6 lists them (two shapes, written by the driver in a namespace): a restart compares
// them with what it would write (a rule replaced by hand keeps the number and the signature).
describe('sameRules', () => {
  const v4: VipShape = {
    key: 'v_c633644d_tcp_81',
    family: 4,
    protocol: 'tcp',
    hash: '5-tuple',
    seed: 0x5eed1234,
    size: 251,
    reselect: true,
    source: { prefixes: ['10.0.0.0/8', '198.18.4.0/24', '198.18.5.7/32'], digest: 'aa9691c2375b0231' },
  };
  const v6: VipShape = {
    key: 'v_20010db8007700090000000000000001_tcp_81',
    family: 6,
    protocol: 'tcp',
    hash: '5-tuple',
    seed: 0x5eed1234,
    size: 251,
    draining: true,
    source: { prefixes: ['2001:db8::/32'], digest: '90c2cbc21bd13638' },
  };
  const listed4 = [
    'ip saddr != { 10.0.0.0/8, 198.18.4.0/24, 198.18.5.7 } counter name "drop_source" drop',
    'counter name "v_c633644d_tcp_81" comment "l4fleet vip hash=5-tuple seed=1592594996 size=251 syn=table reselect src=aa9691c2375b0231"',
    'tcp flags != syn / syn,ack meta mark set ip saddr . tcp sport . ip daddr . tcp dport map @flows4_tcp meta mark @v_c633644d_tcp_81_live update @flows4_tcp { ip saddr . tcp sport . ip daddr . tcp dport timeout 5m : meta mark } goto forward',
    'tcp flags != syn / syn,ack meta mark set ip saddr . tcp sport . ip daddr . tcp dport map @flows4_tcp delete @flows4_tcp { ip saddr . tcp sport . ip daddr . tcp dport : meta mark }',
    'meta mark set jhash ip saddr . tcp sport . ip daddr . tcp dport mod 251 seed 0x5eed1234',
    'meta mark set meta mark map @v_c633644d_tcp_81_over',
    'meta mark 0x00000000/1 meta mark set meta mark map @v_c633644d_tcp_81_slots',
    'meta mark 0x00000000/1 counter name "drop_no_backend" drop',
    'meta mark 0x80000000 counter name "drop_no_backend" drop',
    'tcp flags syn / syn,ack delete @flows4_tcp { ip saddr . tcp sport . ip daddr . tcp dport : meta mark }',
    'add @flows4_tcp { ip saddr . tcp sport . ip daddr . tcp dport timeout 5m : meta mark } goto forward',
    'counter name "flow_table_full" goto forward',
  ];
  const listed6 = [
    'ip6 saddr != 2001:db8::/32 counter name "drop_source" drop',
    'counter name "v_20010db8007700090000000000000001_tcp_81" comment "l4fleet vip hash=5-tuple seed=1592594996 size=251 syn=table src=90c2cbc21bd13638 draining"',
    'tcp flags != syn / syn,ack meta mark set jhash ip6 saddr . tcp sport . ip6 daddr . tcp dport mod 4294967295 seed 0x9e3779b9',
    'tcp flags != syn / syn,ack meta mark set meta mark map @flows6_tcp meta mark @v_20010db8007700090000000000000001_tcp_81_live ip6 saddr . tcp sport . ip6 daddr . tcp dport . meta mark @exact6_tcp update @flows6_tcp { jhash ip6 saddr . tcp sport . ip6 daddr . tcp dport mod 4294967295 seed 0x9e3779b9 timeout 5m : meta mark } update @exact6_tcp { ip6 saddr . tcp sport . ip6 daddr . tcp dport . meta mark timeout 5m } goto forward',
    'tcp flags != syn / syn,ack meta mark set jhash ip6 saddr . tcp sport . ip6 daddr . tcp dport mod 4294967295 seed 0x85ebca6b',
    'tcp flags != syn / syn,ack meta mark set meta mark map @flows6b_tcp meta mark @v_20010db8007700090000000000000001_tcp_81_live ip6 saddr . tcp sport . ip6 daddr . tcp dport . meta mark @exact6_tcp update @flows6b_tcp { jhash ip6 saddr . tcp sport . ip6 daddr . tcp dport mod 4294967295 seed 0x85ebca6b timeout 5m : meta mark } update @exact6_tcp { ip6 saddr . tcp sport . ip6 daddr . tcp dport . meta mark timeout 5m } goto forward',
    'tcp flags syn / syn,ack counter name "drop_no_backend" drop',
    'meta mark set jhash ip6 saddr . tcp sport . ip6 daddr . tcp dport mod 251 seed 0x5eed1234',
    'meta mark set meta mark map @v_20010db8007700090000000000000001_tcp_81_over',
    'meta mark 0x00000000/1 meta mark set meta mark map @v_20010db8007700090000000000000001_tcp_81_slots',
    'meta mark 0x00000000/1 counter name "drop_no_backend" drop',
    'meta mark 0x80000000 counter name "drop_no_backend" drop',
    'tcp flags syn / syn,ack delete @flows6_tcp { jhash ip6 saddr . tcp sport . ip6 daddr . tcp dport mod 4294967295 seed 0x9e3779b9 : meta mark } delete @flows6b_tcp { jhash ip6 saddr . tcp sport . ip6 daddr . tcp dport mod 4294967295 seed 0x85ebca6b : meta mark }',
    'add @flows6_tcp { jhash ip6 saddr . tcp sport . ip6 daddr . tcp dport mod 4294967295 seed 0x9e3779b9 timeout 5m : meta mark } add @flows6b_tcp { jhash ip6 saddr . tcp sport . ip6 daddr . tcp dport mod 4294967295 seed 0x85ebca6b timeout 5m : meta mark } update @exact6_tcp { ip6 saddr . tcp sport . ip6 daddr . tcp dport . meta mark timeout 5m } goto forward',
    'counter name "flow_table_full" goto forward',
  ];

  test('the rules as written are the rules as nft lists them', () => {
    expect(sameRules(listed4.join('\n'), vipRules(v4, TEST_LAYOUT))).toBe(true);
    expect(sameRules(listed6.join('\n'), vipRules(v6, TEST_LAYOUT))).toBe(true);
  });

  test('a rule replaced (count and signature kept), another timeout or seed, is not', () => {
    const replaced = listed4.map((r) => (r.endsWith('_slots') ? 'counter packets 0 bytes 0 drop' : r));
    expect(sameRules(replaced.join('\n'), vipRules(v4, TEST_LAYOUT))).toBe(false);
    expect(sameRules(listed4.join('\n'), vipRules(v4, { ...TEST_LAYOUT, flowTimeoutTcpS: 301 }))).toBe(false);
    expect(sameRules(listed6.join('\n'), vipRules({ ...v6, seed: 7 }, TEST_LAYOUT))).toBe(false);
    const flags = listed6.map((r) =>
      r.replace('tcp flags syn / syn,ack counter', 'tcp flags != syn / syn,ack counter'),
    );
    expect(sameRules(flags.join('\n'), vipRules(v6, TEST_LAYOUT))).toBe(false);
  });
});

// The table's own chains as nft 1.0.6 lists them (written by the driver in a namespace, TEST_LAYOUT's interface and
// MAC): a rule replaced by hand keeps their number of rules, so a restart compares the text with what it would write.
describe("the table's own chains - ingress, forward, echo", () => {
  const ingress = [...LISTED_INGRESS];
  const forward = [...LISTED_FORWARD];
  const echo4 =
    'ip daddr set ip saddr ip saddr set 198.51.100.77 ip ttl set 64 th sport set th sport & 255 ether daddr set ether saddr ether saddr set 02:00:00:00:00:01 counter name "icmp_echo" fwd to "eth0"';
  const echo6 =
    'ip6 daddr set ip6 saddr ip6 saddr set 2001:db8:77:9::1 ip6 hoplimit set 64 th sport set th sport & 33279 | 33024 ether daddr set ether saddr ether saddr set 02:00:00:00:00:01 counter name "icmp_echo" fwd to "eth0"';
  const HEX6 = '20010db8007700090000000000000001';
  const chain = (name: string, rules: string[], hook?: string): string[] => [
    `\tchain ${name} {`,
    ...(hook === undefined ? [] : [`\t\t${hook}`]),
    ...rules.map((r) => `\t\t${r}`),
    '\t}',
  ];

  test("parseSkeleton lists their rules, not the ingress chain's hook", () => {
    const text = [
      'table netdev l4fleet {',
      ...chain('ingress', ingress, 'type filter hook ingress device "eth0" priority filter; policy accept;'),
      ...chain('forward', forward),
      ...chain('echo_c633644d', [echo4]),
      ...chain(`echo_${HEX6}`, [echo6]),
      '}',
    ].join('\n');
    const texts = parseSkeleton(text).chainTexts;
    expect(texts.get('ingress')).toBe(ingress.join('\n'));
    expect(texts.get('forward')).toBe(forward.join('\n'));
    expect(texts.get('echo_c633644d')).toBe(echo4);
    expect(texts.get(`echo_${HEX6}`)).toBe(echo6);
  });

  test('the rules as written are the rules as nft lists them (without /etc/protocols too)', () => {
    expect(sameRules(ingress.join('\n'), baseChainRules())).toBe(true);
    const numeric = ingress.map((r) => r.replace('ipv6-icmp', '58').replace('ipv6-frag', '44'));
    expect(sameRules(numeric.join('\n'), baseChainRules())).toBe(true);
    expect(sameRules(forward.join('\n'), forwardChainRules(TEST_LAYOUT))).toBe(true);
    expect(sameRules(echo4, [echoRule('c633644d', TEST_LAYOUT)])).toBe(true);
    expect(sameRules(echo6, [echoRule(HEX6, TEST_LAYOUT)])).toBe(true);
  });

  test('a rule replaced by hand (the number kept), or another MAC, is not', () => {
    const accept = ingress.map((r) => (r.endsWith('@vips4') ? 'accept' : r));
    expect(sameRules(accept.join('\n'), baseChainRules())).toBe(false);
    expect(sameRules(forward.join('\n'), forwardChainRules({ ...TEST_LAYOUT, ifaceMac: '02:00:00:00:00:02' }))).toBe(
      false,
    );
    expect(sameRules('counter name "icmp_echo" drop', [echoRule('c633644d', TEST_LAYOUT)])).toBe(false);
    expect(sameRules(echo4.replace('& 255', '& 33279 | 33024'), [echoRule('c633644d', TEST_LAYOUT)])).toBe(false);
  });
});
