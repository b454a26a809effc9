/**
 * Hostile fleet files, pure: every case is refused with a ConfigError whose message names the field and the value.
 * Sizes, text shapes and values that parse but cannot work (semantics.ts). The CLI and etcd side of the same
 * inputs is test/hostile-input.int.test.ts.
 */
import { describe, expect, test } from 'vitest';
import { unusableAddress } from './address-use.js';
import { ConfigError, formatProblem } from './errors.js';
import { showValue } from './fields.js';
import {
  fleetTextProblem,
  MAX_FLEET_BYTES,
  MAX_FLEET_DEPTH,
  MAX_MEMBERS_PER_POOL,
  MAX_POOLS,
  MAX_PROBLEMS_REPORTED,
  MAX_TOTAL_MEMBERS,
  MAX_VIPS,
  MAX_YAML_INDENT_COLUMNS,
  MAX_YAML_NODES,
} from './limits.js';
import { parseFleet, parseFleetText } from './parse.js';
import { directReturnProblems } from './semantics.js';

/** `levels` nested anchors, each list holding 9 aliases of the one before: 9^levels values if expanded. */
function aliasBomb(levels: number): string {
  let text = 'a0: &a0 [x,x,x,x,x,x,x,x,x]\n';
  for (let i = 1; i < levels; i++) text += `a${i}: &a${i} [${new Array(9).fill(`*a${i - 1}`).join(',')}]\n`;
  return text;
}

type Raw = Record<string, unknown>;
const member = (address: string, port = 80, extra: Raw = {}): Raw => ({ address, port, ...extra });
const fleetWith = (o: { hc?: Raw; members?: Raw[]; vip?: Raw; pool?: Raw } = {}): Raw => ({
  hashSeed: 1,
  pools: [
    {
      name: 'web',
      members: o.members ?? [member('198.18.0.21'), member('198.18.0.22')],
      ...(o.hc ? { healthCheck: o.hc } : {}),
      ...o.pool,
    },
  ],
  vips: [{ address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web', ...o.vip }],
});

function refusal(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('config hostile - values valid in form that cannot work', () => {
  test.each<[string, Raw, string]>([
    ['VIP 0.0.0.0', fleetWith({ vip: { address: '0.0.0.0' } }), 'vips[0].address: "0.0.0.0" is an unspecified'],
    [
      'VIP 0.1.2.3 (this network)',
      fleetWith({ vip: { address: '0.1.2.3' } }),
      'vips[0].address: "0.1.2.3" is an unspecified',
    ],
    [
      'VIP 127.0.0.1',
      fleetWith({ vip: { address: '127.0.0.1' } }),
      'vips[0].address: "127.0.0.1" is a loopback address',
    ],
    [
      'VIP 127.255.0.9',
      fleetWith({ vip: { address: '127.255.0.9' } }),
      'vips[0].address: "127.255.0.9" is a loopback address',
    ],
    [
      'VIP 255.255.255.255',
      fleetWith({ vip: { address: '255.255.255.255' } }),
      'vips[0].address: "255.255.255.255" is the broadcast address',
    ],
    [
      'VIP 224.0.0.1',
      fleetWith({ vip: { address: '224.0.0.1' } }),
      'vips[0].address: "224.0.0.1" is a multicast address',
    ],
    [
      'VIP 239.1.2.3',
      fleetWith({ vip: { address: '239.1.2.3' } }),
      'vips[0].address: "239.1.2.3" is a multicast address',
    ],
    [
      'VIP 169.254.1.1',
      fleetWith({ vip: { address: '169.254.1.1' } }),
      'vips[0].address: "169.254.1.1" is a link-local address',
    ],
    [
      'VIP 240.0.0.1',
      fleetWith({ vip: { address: '240.0.0.1' } }),
      'vips[0].address: "240.0.0.1" is a reserved address',
    ],
    [
      'member 0.0.0.0',
      fleetWith({ members: [member('0.0.0.0')] }),
      'pools[0].members[0].address: "0.0.0.0" is an unspecified',
    ],
    [
      'member 255.255.255.255',
      fleetWith({ members: [member('255.255.255.255')] }),
      'pools[0].members[0].address: "255.255.255.255" is the broadcast',
    ],
    [
      'member 230.1.1.1',
      fleetWith({ members: [member('230.1.1.1')] }),
      'pools[0].members[0].address: "230.1.1.1" is a multicast address',
    ],
    [
      'member 169.254.9.9',
      fleetWith({ members: [member('169.254.9.9')] }),
      'pools[0].members[0].address: "169.254.9.9" is a link-local',
    ],
    [
      'member is a VIP of the fleet',
      fleetWith({ members: [member('198.51.100.10')] }),
      'pools[0].members[0].address: "198.51.100.10" is a VIP of this fleet',
    ],
    [
      'IPv6 VIP ::',
      {
        pools: [{ name: 'p', members: [member('2001:db8::1')] }],
        vips: [{ address: '::', port: 80, protocol: 'tcp', pool: 'p' }],
      },
      'vips[0].address: "::" is the unspecified address',
    ],
    [
      'IPv6 VIP ::1',
      {
        pools: [{ name: 'p', members: [member('2001:db8::1')] }],
        vips: [{ address: '::1', port: 80, protocol: 'tcp', pool: 'p' }],
      },
      'vips[0].address: "::1" is the loopback address',
    ],
    [
      'IPv6 VIP ff02::1',
      {
        pools: [{ name: 'p', members: [member('2001:db8::1')] }],
        vips: [{ address: 'ff02::1', port: 80, protocol: 'tcp', pool: 'p' }],
      },
      'vips[0].address: "ff02::1" is a multicast address',
    ],
    [
      'IPv6 VIP fe80::1',
      {
        pools: [{ name: 'p', members: [member('2001:db8::1')] }],
        vips: [{ address: 'fe80::1', port: 80, protocol: 'tcp', pool: 'p' }],
      },
      'vips[0].address: "fe80::1" is a link-local address',
    ],
    [
      'IPv6 VIP febf::1 (end of fe80::/10)',
      {
        pools: [{ name: 'p', members: [member('2001:db8::1')] }],
        vips: [{ address: 'febf::1', port: 80, protocol: 'tcp', pool: 'p' }],
      },
      'vips[0].address: "febf::1" is a link-local address',
    ],
    [
      'IPv6 member ::ffff:198.18.0.1',
      {
        pools: [{ name: 'p', members: [member('::ffff:198.18.0.1')] }],
        vips: [{ address: '2001:db8::53', port: 80, protocol: 'tcp', pool: 'p' }],
      },
      'pools[0].members[0].address: "::ffff:c612:1" is an IPv4-mapped address',
    ],
    [
      'IPv6 VIP ::198.51.100.1 (IPv4-compatible, deprecated)',
      {
        pools: [{ name: 'p', members: [member('2001:db8::1')] }],
        vips: [{ address: '::198.51.100.1', port: 80, protocol: 'tcp', pool: 'p' }],
      },
      'vips[0].address: "::c633:6401" is an IPv4-compatible address (::/96, deprecated by RFC 4291 §2.5.5.1; write the IPv4 address)',
    ],
    [
      'IPv6 member ::198.18.0.1 (IPv4-compatible, deprecated)',
      {
        pools: [{ name: 'p', members: [member('::198.18.0.1')] }],
        vips: [{ address: '2001:db8::53', port: 80, protocol: 'tcp', pool: 'p' }],
      },
      'pools[0].members[0].address: "::c612:1" is an IPv4-compatible address',
    ],
    [
      'timeout equals interval',
      fleetWith({ hc: { type: 'tcp', intervalMs: 1000, timeoutMs: 1000 } }),
      'pools[0].healthCheck.timeoutMs: 1000 equals intervalMs (1000)',
    ],
    [
      'timeout longer than interval',
      fleetWith({ hc: { type: 'tcp', intervalMs: 500, timeoutMs: 1000 } }),
      'pools[0].healthCheck.timeoutMs: 1000 is longer than intervalMs (500)',
    ],
    ['rise 0', fleetWith({ hc: { type: 'tcp', rise: 0 } }), 'pools[0].healthCheck.rise: 0 is not a count (1-100)'],
    ['fall 0', fleetWith({ hc: { type: 'tcp', fall: 0 } }), 'pools[0].healthCheck.fall: 0 is not a count (1-100)'],
    [
      'http expectStatus 100',
      fleetWith({ hc: { type: 'http', expectStatus: 100 } }),
      'pools[0].healthCheck.expectStatus: 100 is an informational (1xx) status',
    ],
    [
      'http expectStatus 199',
      fleetWith({ hc: { type: 'http', expectStatus: 199 } }),
      'pools[0].healthCheck.expectStatus: 199 is an informational',
    ],
    [
      'http path with a space',
      fleetWith({ hc: { type: 'http', path: '/a b' } }),
      'pools[0].healthCheck.path: "/a b" is not a request path',
    ],
    [
      'http path with CRLF (request smuggling)',
      fleetWith({ hc: { type: 'http', path: '/x\r\nHost: evil' } }),
      'pools[0].healthCheck.path: "/x\\r\\nHost: evil" is not a request path',
    ],
    [
      'http path too long',
      fleetWith({ hc: { type: 'http', path: `/${'a'.repeat(3000)}` } }),
      'pools[0].healthCheck.path: "/aaaa',
    ],
    [
      'udp payload over one datagram',
      fleetWith({ hc: { type: 'udp', payload: 'x'.repeat(1233) }, vip: { protocol: 'udp' } }),
      'pools[0].healthCheck.payload: 1233 bytes is more than the limit of 1232',
    ],
    [
      'http check on a udp VIP, no check port',
      fleetWith({ hc: { type: 'http' }, vip: { protocol: 'udp' } }),
      'pools[0].healthCheck.type: "http" probes TCP on the member\'s port but vips[0] 198.51.100.10:80/udp is udp',
    ],
    [
      'udp check on a tcp VIP, no check port',
      fleetWith({ hc: { type: 'udp' } }),
      'pools[0].healthCheck.type: "udp" probes UDP on the member\'s port but vips[0] 198.51.100.10:80/tcp is tcp',
    ],
  ])('%s', (_name, raw, expected) => {
    const err = refusal(() => parseFleet(raw));
    expect(err.code).toBe('INVALID');
    expect(err.message).toContain(expected);
  });

  test.each<[string, Raw]>([
    [
      'http check on a udp VIP with an explicit TCP port',
      fleetWith({ hc: { type: 'http', port: 8080 }, vip: { protocol: 'udp' } }),
    ],
    [
      'tcp check on a udp VIP (a DNS server answers TCP 53 too)',
      fleetWith({ hc: { type: 'tcp' }, vip: { protocol: 'udp' } }),
    ],
    ['documentation and lab addresses', fleetWith({ members: [member('198.18.0.1'), member('198.19.255.254')] })],
    ['timeout just under interval', fleetWith({ hc: { type: 'tcp', intervalMs: 1000, timeoutMs: 999 } })],
    ['http path with query and escapes', fleetWith({ hc: { type: 'http', path: '/healthz?full=1&x=%20' } })],
    [
      'udp payload of exactly one datagram',
      fleetWith({ hc: { type: 'udp', payload: 'x'.repeat(1232) }, vip: { protocol: 'udp' } }),
    ],
  ])('accepted: %s', (_name, raw) => {
    expect(() => parseFleet(raw)).not.toThrow();
  });

  test('unusableAddress - loopback is refused as a VIP, left to directReturnProblems as a member', () => {
    expect(unusableAddress('127.0.0.1', 'vip')).toMatch(/loopback/);
    expect(unusableAddress('127.0.0.1', 'member')).toBeUndefined();
    expect(() => parseFleet(fleetWith({ members: [member('127.0.0.1', 8080)] }))).not.toThrow();
  });

  test('unusableAddress - the range edges', () => {
    expect(unusableAddress('126.255.255.255', 'vip')).toBeUndefined();
    expect(unusableAddress('128.0.0.0', 'vip')).toBeUndefined();
    expect(unusableAddress('223.255.255.255', 'vip')).toBeUndefined();
    expect(unusableAddress('255.255.255.254', 'vip')).toMatch(/reserved/);
    expect(unusableAddress('fec0::1', 'vip')).toBeUndefined();
    expect(unusableAddress('::2', 'vip')).toBeUndefined();
    // IPv4-compatible (RFC 4291 §2.5.5.1) is ::/96 with an IPv4 address in it: not ::, ::1 or ::0.x.x.x.
    expect(unusableAddress('::1.0.0.0', 'vip')).toMatch(/IPv4-compatible/);
    expect(unusableAddress('::255.255.255.255', 'member')).toMatch(/IPv4-compatible/);
    expect(unusableAddress('::0.255.255.255', 'vip')).toBeUndefined();
    expect(unusableAddress('::1', 'member')).toBeUndefined();
    expect(unusableAddress('::', 'member')).toMatch(/unspecified/);
    expect(unusableAddress('::1:0:0', 'vip')).toBeUndefined();
    expect(unusableAddress('2001:db8::1', 'vip')).toBeUndefined();
  });
});

describe('config hostile - direct server return (directReturnProblems, checked by the CLI at apply)', () => {
  test.each<[string, Raw, string]>([
    [
      'member port differs from the VIP port (l2)',
      fleetWith({ members: [member('198.18.0.21', 8080)] }),
      'pools[0].members[0].port: 8080 differs from the port of vips[0] 198.51.100.10:80/tcp: forwarding l2',
    ],
    [
      'member port differs (gue, no rewrite either)',
      fleetWith({ members: [member('198.18.0.21', 81)], pool: { forwarding: 'gue' } }),
      'pools[0].members[0].port: 81 differs from the port of vips[0] 198.51.100.10:80/tcp: forwarding gue',
    ],
    [
      'many members on another port: first one and a count',
      fleetWith({ members: [member('198.18.0.21'), member('198.18.0.22', 81), member('198.18.0.23', 82)] }),
      'pools[0].members[1].port: 81 differs from the port of vips[0] 198.51.100.10:80/tcp: forwarding l2 (direct server return) does not rewrite ports (and 1 more members of pool "web")',
    ],
    [
      'member 127.0.0.1',
      fleetWith({ members: [member('127.0.0.1')] }),
      'pools[0].members[0].address: "127.0.0.1" is a loopback address: with direct server return that is the node itself',
    ],
  ])('%s', (_name, raw, expected) => {
    const problems = directReturnProblems(parseFleet(raw)).map(formatProblem);
    expect(problems.join('\n')).toContain(expected);
  });

  test('a fleet on the VIP ports with routable members has none', () => {
    expect(directReturnProblems(parseFleet(fleetWith()))).toEqual([]);
  });
});

describe('config hostile - sizes are refused before any per-member work', () => {
  const many = (n: number) => Array.from({ length: n }, () => ({}));
  test.each<[string, Raw, string]>([
    ['too many VIPs', { vips: many(MAX_VIPS + 1) }, `vips: 1,001 VIPs is more than the limit of 1,000 (MAX_VIPS)`],
    [
      'too many pools',
      { pools: many(MAX_POOLS + 1) },
      `pools: 1,001 pools is more than the limit of 1,000 (MAX_POOLS)`,
    ],
    [
      'too many members in one pool',
      { pools: [{ name: 'p', members: many(MAX_MEMBERS_PER_POOL + 1) }] },
      'pools[0].members: 100,001 members is more than the limit of 100,000 (MAX_MEMBERS_PER_POOL)',
    ],
    [
      'too many members in all pools',
      { pools: Array.from({ length: 3 }, () => ({ members: many(Math.ceil((MAX_TOTAL_MEMBERS + 1) / 3)) })) },
      'pools: 250,002 members in all pools is more than the limit of 250,000 (MAX_TOTAL_MEMBERS)',
    ],
    [
      'too many member health checks in all pools',
      {
        pools: Array.from({ length: 2 }, () => ({
          members: many(100_000),
          additionalHealthChecks: [
            { type: 'tcp', port: 1 },
            { type: 'tcp', port: 2 },
          ],
        })),
      },
      'pools: 600,000 member health checks in all pools is more than the limit of 500,000 (MAX_TOTAL_MEMBER_CHECKS)',
    ],
    [
      'too many table slots',
      { vips: Array.from({ length: 40 }, () => ({ tableSize: 2_097_143 })) },
      'vips: 83,885,720 table slots in all VIPs is more than the limit of 67,108,864 (MAX_TOTAL_TABLE_SLOTS)',
    ],
  ])('%s', (_name, raw, expected) => {
    const err = refusal(() => parseFleet(raw));
    expect(err.code).toBe('TOO_LARGE');
    expect(err.message).toBe(expected);
  });

  test('a million bad members give at most MAX_PROBLEMS_REPORTED lines and a count', () => {
    const err = refusal(() => parseFleet({ pools: [{ name: 'p', members: many(50_000) }] }));
    expect(err.problems).toHaveLength(MAX_PROBLEMS_REPORTED + 1);
    expect(err.problems.at(-1)?.message).toMatch(/^\.\.\. and [\d,]+ more problems$/);
  });
});

describe('config hostile - fleet text', () => {
  const yamlOf = (n: number) => `vips:\n${'- 1\n'.repeat(n)}`;
  test.each<[string, string, string, string]>([
    [
      'over MAX_FLEET_BYTES',
      'x'.repeat(MAX_FLEET_BYTES + 1),
      'TOO_LARGE',
      'the fleet file is 16,777,217 bytes, more than the limit of 16,777,216 bytes (MAX_FLEET_BYTES)',
    ],
    ['multi-byte text over the byte bound', 'é'.repeat(MAX_FLEET_BYTES / 2 + 1), 'TOO_LARGE', 'is 16,777,218 bytes'],
    ['a NUL byte', 'pools: []\n\0', 'TOO_LARGE', 'the fleet file has a NUL byte at offset 10: not text'],
    [
      'brackets nested too deep (YAML)',
      `vips: ${'['.repeat(MAX_FLEET_DEPTH + 1)}`,
      'TOO_LARGE',
      `nests brackets 33 deep, more than the limit of 32 (MAX_FLEET_DEPTH)`,
    ],
    ['brackets nested too deep (JSON)', `{"vips": ${'['.repeat(1000)}`, 'TOO_LARGE', 'nests brackets 1,001 deep'],
    [
      'too many YAML nodes',
      yamlOf(MAX_YAML_NODES + 1),
      'TOO_LARGE',
      'YAML nodes (lines, commas, brackets), more than the limit of 1,500,000 (MAX_YAML_NODES)',
    ],
    ['alias bomb (billion laughs)', aliasBomb(6), 'SYNTAX', 'Excessive alias count'],
    ['duplicate keys', 'pools: []\npools: []\n', 'SYNTAX', 'not valid YAML: Map keys must be unique'],
    ['invalid JSON', '{"pools": [', 'SYNTAX', 'not valid JSON'],
    ['a scalar, not a fleet', '42', 'INVALID', 'the fleet file is 42, not an object'],
    ['a list, not a fleet', '- a\n- b\n', 'INVALID', 'the fleet file is ["a","b"], not an object'],
    ['an empty file', '', 'INVALID', 'the fleet file is null, not an object'],
    ['__proto__ key', '{"__proto__": {"polluted": 1}, "pools": []}', 'INVALID', '__proto__: is not a known field'],
    [
      'a huge unknown key is shown cut short',
      `{"${'k'.repeat(5000)}": 1}`,
      'INVALID',
      `${'k'.repeat(120)}...: is not a known field`,
    ],
    [
      'a huge string value is shown cut short',
      `hashSeed: "${'9'.repeat(100_000)}"\n`,
      'INVALID',
      `hashSeed: "${'9'.repeat(120)}"...`,
    ],
  ])('%s', (_name, text, code, expected) => {
    const err = refusal(() => parseFleetText(text));
    expect(err.code).toBe(code);
    expect(err.message).toContain(expected);
    expect(err.message.length).toBeLessThan(2_000);
  });

  test('showValue - deep and wide values stay short and never recurse without bound', () => {
    let deep: unknown = 1;
    for (let i = 0; i < 100_000; i++) deep = [deep];
    expect(showValue(deep)).toBe('[[[[...]]]]');
    expect(showValue(Array.from({ length: 1_000 }, (_, i) => i))).toBe('[0,1,2,3,4,5,6,7,... 1000 items]');
    expect(showValue({ a: 1, b: 'x' })).toBe('{"a":1,"b":"x"}');
    expect(showValue(undefined)).toBe('missing');
  });

  test('one anchored health check reused by 500 pools is accepted (aliases are shared, counts are bounded)', () => {
    const pools = Array.from(
      { length: 500 },
      (_, i) =>
        `  - { name: p${i}, healthCheck: ${i === 0 ? '&hc { type: tcp, intervalMs: 1000, timeoutMs: 500 }' : '*hc'}, members: [{ address: 198.18.${i >> 8}.${i & 255}, port: 80 }] }\n`,
    );
    const fleet = parseFleetText(`pools:\n${pools.join('')}`);
    expect(fleet.pools[499]?.healthCheck).toMatchObject({ type: 'tcp', intervalMs: 1000 });
  });

  test('Object.prototype is untouched after a __proto__ fleet', () => {
    refusal(() => parseFleetText('{"__proto__": {"polluted": 1}}'));
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe('config hostile - values that are not plain data', () => {
  test.each<[string, Raw, string]>([
    [
      'a VIP address {toString: 1}',
      fleetWith({ vip: { address: { toString: 1 } } }),
      'vips[0].address: {"toString":1} is not an IPv4 or IPv6 address',
    ],
    [
      'a member address {toString: 1}',
      fleetWith({ members: [{ address: { toString: 1 }, port: 80 }] }),
      'pools[0].members[0].address: {"toString":1} is not an IPv4 or IPv6 address',
    ],
    [
      'a member address nested 100,000 deep',
      fleetWith({
        members: [
          {
            address: (() => {
              let deep: unknown = 1;
              for (let i = 0; i < 100_000; i++) deep = [deep];
              return deep;
            })(),
            port: 80,
          },
        ],
      }),
      'pools[0].members[0].address: [[[[...]]]] is not an IPv4 or IPv6 address',
    ],
  ])('%s is a ConfigError naming the field', (_name, raw, expected) => {
    const err = refusal(() => parseFleet(raw));
    expect(err.code).toBe('INVALID');
    expect(err.message).toContain(expected);
  });

  const good = 'pools:\n  - name: web\n    members: [{address: 198.18.0.21, port: 80}]\n';
  // YAML 1.1 reads 1:20 as 80 (sexagesimal), 0120 as 80 (octal) and 1_0 as 10; fleet files are YAML 1.2.
  test.each<[string, string, number | string]>([
    ['1:20', 'a string, not a port', '"1:20" is not a port'],
    ['1_0', 'a string, not a port', '"1_0" is not a port'],
    ['0120', 'decimal', 120],
  ])('port: %s is read as YAML 1.2 (%s); under a YAML 1.1 header the file is refused', (port, _what, said) => {
    const text = `${good}vips: [{address: 198.51.100.10, port: ${port}, protocol: tcp, pool: web}]\n`;
    if (typeof said === 'number') expect(parseFleetText(text).vips[0]?.port).toBe(said);
    else expect(refusal(() => parseFleetText(text)).message).toContain(`vips[0].port: ${said}`);
    expect(refusal(() => parseFleetText(`%YAML 1.1\n---\n${text}`)).message).toContain('a %YAML 1.1 directive');
  });

  test('a %YAML 1.1 header is refused naming the directive; 1.2 is accepted', () => {
    const err = refusal(() => parseFleetText(`%YAML 1.1\n---\n${good}`));
    expect(err.code).toBe('SYNTAX');
    expect(err.message).toBe('not valid YAML: a %YAML 1.1 directive at line 1, column 1: fleet files are YAML 1.2');
    expect(parseFleetText(`%YAML 1.2\n---\n${good}`).pools[0]?.name).toBe('web');
  });

  test('a merge key (<<) is refused as an unknown field, with or without a %YAML 1.1 header', () => {
    const text = 'm: &m {port: 80}\npools:\n  - name: web\n    members: [{address: 198.18.0.21, <<: *m}]\n';
    expect(refusal(() => parseFleetText(text)).message).toContain('pools[0].members[0].<<: is not a known field');
    expect(refusal(() => parseFleetText(`%YAML 1.1\n---\n${text}`)).message).toContain('a %YAML 1.1 directive');
  });

  test.each<[string, string, string]>([
    ['an unknown tag', 'pools:\n  - name: !secret web1\n', 'an unknown tag !secret at line 2, column 11'],
    ['a js tag', 'pools:\n  - name: !!js/function "x"\n', 'an unknown tag !!js/function at line 2, column 11'],
    ['a timestamp', 'hashSeed: !!timestamp 2001-01-01\n', 'an unknown tag !!timestamp at line 1, column 11'],
    ['a binary', 'hashSeed: !!binary aGVsbG8=\n', 'an unknown tag !!binary at line 1, column 11'],
    ['a set', 'pools: !!set {a: null}\n', 'an unknown tag !!set at line 1, column 8'],
    ['an omap', 'pools: !!omap [{a: 1}]\n', 'an unknown tag !!omap at line 1, column 8'],
  ])('%s is refused naming the tag, line and column', (_name, text, expected) => {
    const err = refusal(() => parseFleetText(text));
    expect(err.code).toBe('SYNTAX');
    expect(err.message).toContain(expected);
  });
});

describe('config hostile - block nesting is bounded before parsing (fleetTextProblem)', () => {
  // Only the pre-check: 5,000 levels parsed three times in one process ran the yaml library out of memory.
  test.each<[string, string]>([
    ['a sequence of sequences on one line', `vips:\n  ${'- '.repeat(5_000)}1\n`],
    ['the same at the end of the text', `vips:\n  ${'- '.repeat(5_000)}`],
    ['maps nested by indentation alone', Array.from({ length: 300 }, (_, i) => `${' '.repeat(i)}k${i}:`).join('\n')],
    ['? and : indicators', `${'? '.repeat(100)}${': '.repeat(100)}x\n`],
  ])('%s is refused naming the line', (_name, text) => {
    expect(fleetTextProblem(text, true)?.message).toMatch(
      /^the fleet file indents line \d+ more than 256 columns .*\(MAX_YAML_INDENT_COLUMNS\)$/,
    );
  });

  test('a fleet indented with 8 spaces, a block scalar and JSON are not', () => {
    const deep = `pools:\n        - name: web\n          members:\n                - address: 198.18.0.21\n                  port: 80\n`;
    expect(fleetTextProblem(deep, true)).toBeUndefined();
    expect(fleetTextProblem(`a: |\n${' '.repeat(MAX_YAML_INDENT_COLUMNS)}x\n`, true)).toBeUndefined();
    expect(fleetTextProblem(`{"a": "${' '.repeat(1_000)}"}`, false)).toBeUndefined();
    expect(fleetTextProblem(`x: "${'- '.repeat(1_000)}"\n`, true)).toBeUndefined();
  });

  test('a blank line of spaces and an indented comment are no nesting: a valid fleet with them is taken', () => {
    // Only lines with content nest; a line of 300 spaces (an editor's leftover) or a comment at column 300 is not one.
    const blank = ' '.repeat(300);
    const text = `pools:\n  - name: web\n${blank}\n${blank}\r\n${' '.repeat(300)}# members below\n    members: [{address: 198.18.0.21, port: 80}]\n${' '.repeat(300)}`;
    expect(fleetTextProblem(text, true)).toBeUndefined();
    expect(parseFleetText(text).pools[0]?.members).toHaveLength(1);
    // Content after those spaces is refused as before.
    expect(fleetTextProblem(`a:\n${blank}b: 1\n`, true)?.message).toMatch(/indents line 2 more than 256 columns/);
  });
});
