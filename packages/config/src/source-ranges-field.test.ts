import { describe, expect, test } from 'vitest';
import { diffFleets } from './diff.js';
import { ConfigError } from './errors.js';
import { MAX_SOURCE_RANGES_PER_VIP, MAX_TOTAL_SOURCE_RANGES } from './limits.js';
import { parseFleet, parseFleetText } from './parse.js';
import { problems } from './problems.test-helper.js';
import { parseSourcePrefix, sourceAdmits } from './source-ranges.js';

const fleet = (vip: object, family: 4 | 6 = 4) => ({
  pools: [{ name: 'web', members: [{ address: family === 4 ? '198.18.0.21' : '2001:db8::21', port: 80 }] }],
  vips: [{ address: family === 4 ? '198.51.100.10' : '2001:db8::10', port: 80, protocol: 'tcp', pool: 'web', ...vip }],
});

describe('config sourceRanges', () => {
  test('absent: the VIP has none (every client)', () => {
    expect(parseFleet(fleet({})).vips[0]?.sourceRanges).toBeUndefined();
  });

  test('prefixes are kept in order, canonical; a bare address is its host prefix', () => {
    const v4 = parseFleet(fleet({ sourceRanges: ['198.18.0.0/15', '10.1.2.3', '0.0.0.0/0'] })).vips[0];
    expect(v4?.sourceRanges).toEqual(['198.18.0.0/15', '10.1.2.3/32', '0.0.0.0/0']);
    const v6 = parseFleet(fleet({ sourceRanges: ['2001:DB8:0::/32', '2001:db8::1:0:0:1'] }, 6)).vips[0];
    expect(v6?.sourceRanges).toEqual(['2001:db8::/32', '2001:db8::1:0:0:1/128']);
  });

  test('every bad entry is named with its index and value, and nothing else is parsed', () => {
    expect(
      problems(
        fleet({
          sourceRanges: [
            '10.0.0.0/33',
            '10.1.2.3/8',
            'ten',
            '2001:db8::/32',
            7,
            '198.18.0.0/15',
            '198.18.0.0/15',
            '10.0.0.0/08x',
          ],
        }),
      ),
    ).toEqual([
      'vips[0].sourceRanges[0]: "10.0.0.0/33" has a prefix length other than 0-32',
      'vips[0].sourceRanges[1]: "10.1.2.3/8" has host bits set (the prefix is 10.0.0.0/8)',
      'vips[0].sourceRanges[2]: "ten" is not an IPv4 or IPv6 prefix (ADDRESS/LENGTH, e.g. 198.18.0.0/15)',
      'vips[0].sourceRanges[3]: "2001:db8::/32" is IPv6 but the VIP is IPv4',
      'vips[0].sourceRanges[4]: 7 is not a prefix string',
      'vips[0].sourceRanges[6]: "198.18.0.0/15" is listed twice (also at [5])',
      'vips[0].sourceRanges[7]: "10.0.0.0/08x" has a prefix length other than 0-32',
    ]);
  });

  test('an empty list and a non-list are refused: leaving the field out admits everyone', () => {
    expect(problems(fleet({ sourceRanges: [] }))).toEqual([
      'vips[0].sourceRanges: [] admits no client: leave sourceRanges out to admit every client',
    ]);
    expect(problems(fleet({ sourceRanges: '10.0.0.0/8' }))).toEqual([
      'vips[0].sourceRanges: "10.0.0.0/8" is not a list of prefixes',
    ]);
  });

  test('IPv6 host bits and lengths are checked against 128 bits', () => {
    expect(problems(fleet({ sourceRanges: ['2001:db8::1/64', '2001:db8::/129'] }, 6))).toEqual([
      'vips[0].sourceRanges[0]: "2001:db8::1/64" has host bits set (the prefix is 2001:db8::/64)',
      'vips[0].sourceRanges[1]: "2001:db8::/129" has a prefix length other than 0-128',
    ]);
  });

  test('a VIP over MAX_SOURCE_RANGES_PER_VIP and a fleet over MAX_TOTAL_SOURCE_RANGES are refused', () => {
    const many = (n: number, base: number) => Array.from({ length: n }, (_, i) => `10.${base}.${i >> 8}.${i & 255}/32`);
    expect(problems(fleet({ sourceRanges: many(MAX_SOURCE_RANGES_PER_VIP + 1, 0) }))).toEqual([
      `vips[0].sourceRanges: has ${MAX_SOURCE_RANGES_PER_VIP + 1} prefixes, more than ${MAX_SOURCE_RANGES_PER_VIP} (MAX_SOURCE_RANGES_PER_VIP)`,
    ]);
    const vips = Array.from({ length: MAX_TOTAL_SOURCE_RANGES / MAX_SOURCE_RANGES_PER_VIP + 1 }, (_, i) => ({
      address: '198.51.100.10',
      port: 1000 + i,
      protocol: 'tcp',
      pool: 'web',
      sourceRanges: many(MAX_SOURCE_RANGES_PER_VIP, i),
    }));
    const total = (MAX_TOTAL_SOURCE_RANGES / MAX_SOURCE_RANGES_PER_VIP + 1) * MAX_SOURCE_RANGES_PER_VIP;
    expect(problems({ ...fleet({}), vips })).toEqual([
      `vips: ${total.toLocaleString('en-US')} source prefixes in all VIPs is more than the limit of ${MAX_TOTAL_SOURCE_RANGES.toLocaleString('en-US')} (MAX_TOTAL_SOURCE_RANGES)`,
    ]);
  });

  test('parseSourcePrefix gives the network bytes and length', () => {
    const p = parseSourcePrefix('198.18.0.0/15');
    expect(typeof p === 'string' ? p : { bytes: [...p.bytes], length: p.length, family: p.family }).toEqual({
      bytes: [198, 18, 0, 0],
      length: 15,
      family: 4,
    });
    expect(parseSourcePrefix('198.19.0.0/15')).toBe('has host bits set (the prefix is 198.18.0.0/15)');
    expect(parseSourcePrefix('::/0')).toMatchObject({ family: 6, length: 0, text: '::/0' });
  });

  test('apply names a change of sourceRanges: prefixes added and removed, or every client', () => {
    const detail = (a: object, b: object) => diffFleets(parseFleet(fleet(a)), parseFleet(fleet(b))).changes[0]?.detail;
    expect(detail({}, { sourceRanges: ['10.0.0.0/8'] })).toBe('sourceRanges every client -> 10.0.0.0/8');
    expect(
      detail({ sourceRanges: ['10.0.0.0/8', '198.18.0.0/15'] }, { sourceRanges: ['198.18.0.0/15', '10.9.0.0/16'] }),
    ).toBe('sourceRanges +10.9.0.0/16 -10.0.0.0/8');
    expect(detail({ sourceRanges: ['10.0.0.0/8'] }, {})).toBe('sourceRanges 10.0.0.0/8 -> every client');
    const many = Array.from({ length: 10 }, (_, i) => `10.0.${i}.0/24`);
    expect(detail({}, { sourceRanges: many })).toBe(
      `sourceRanges every client -> ${many.slice(0, 8).join(' ')} ... (2 more)`,
    );
  });
});

describe('sourceAdmits', () => {
  test('a client address against the prefixes: IPv4, IPv4-mapped, IPv6, a zone; every client without prefixes', () => {
    const admits = sourceAdmits(['198.18.0.0/15', '2001:db8::/32', 'fe80::/10']);
    expect(['198.19.255.1', '::ffff:198.18.0.1', '2001:db8::7', 'fe80::1%eth0'].map(admits)).toEqual([
      true,
      true,
      true,
      true,
    ]);
    expect(['198.20.0.1', '10.0.0.1', '2001:db9::1', 'not an address', ''].map(admits)).toEqual([
      false,
      false,
      false,
      false,
      false,
    ]);
    expect(sourceAdmits(undefined)('10.0.0.1')).toBe(true);
  });
});

describe('config sourceRanges - IPv4-mapped and IPv4-compatible prefixes', () => {
  /** Problems of the fleet as `l4fleet apply` reads a file (parseFleetText), as path: message. */
  const fileProblems = (ranges: readonly string[]): string[] => {
    try {
      parseFleetText(JSON.stringify(fleet({ sourceRanges: ranges }, 6)), 'json');
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as ConfigError).problems.map((p) => `${p.path}: ${p.message}`);
    }
    return [];
  };

  // No packet carries such a source (an IPv4 client's packets are IPv4, and reach the IPv4 VIPs); the proxy
  // reports a dual-stack listener's IPv4 clients as IPv4. So the prefix admitted nothing, on any data plane.
  test.each([
    [
      '::ffff:198.51.100.0/120',
      'vips[0].sourceRanges[1]: "::ffff:c633:6400/120" is an IPv4-mapped prefix (::ffff:0:0/96; write the IPv4 prefix, 198.51.100.0/24, on an IPv4 VIP)',
    ],
    [
      '::ffff:0:0/96',
      'vips[0].sourceRanges[1]: "::ffff:0:0/96" is an IPv4-mapped prefix (::ffff:0:0/96; write the IPv4 prefix, 0.0.0.0/0, on an IPv4 VIP)',
    ],
    [
      '::198.51.100.7',
      'vips[0].sourceRanges[1]: "::c633:6407/128" is an IPv4-compatible prefix (::/96, deprecated by RFC 4291 §2.5.5.1; write the IPv4 prefix, 198.51.100.7/32, on an IPv4 VIP)',
    ],
  ])('%s is refused when a file is read (apply), naming the index and the IPv4 prefix meant', (range, says) => {
    expect(fileProblems(['2001:db8::/32', range])).toEqual([says]);
  });

  test.each(['::/0', '::/96', '::/80', '::2/127', '2001:db8::/32', '::1'])(
    '%s is not refused: not wholly inside ::ffff:0:0/96 or the IPv4-compatible addresses',
    (range) => {
      expect(fileProblems([range])).toEqual([]);
    },
  );

  test('a stored fleet with one still loads on the nodes (parseFleet): it was accepted before', () => {
    const v = parseFleet(fleet({ sourceRanges: ['::ffff:198.51.100.0/120', '::198.51.100.7'] }, 6)).vips[0];
    expect(v?.sourceRanges).toEqual(['::ffff:c633:6400/120', '::c633:6407/128']);
  });
});
