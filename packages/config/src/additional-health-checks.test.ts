import { describe, expect, test } from 'vitest';
import { checkLabel, healthChecksOf, MAX_ADDITIONAL_HEALTH_CHECKS } from './additional-health-checks.js';
import { diffFleets } from './diff.js';
import { parseFleet } from './parse.js';
import { problems } from './problems.test-helper.js';

type Raw = Record<string, unknown>;
const fleetWith = (pool: Raw, protocol = 'tcp'): Raw => ({
  hashSeed: 1,
  pools: [{ name: 'web', members: [{ address: '198.18.0.21', port: 443 }], ...pool }],
  vips: [{ address: '198.51.100.10', port: 443, protocol, pool: 'web' }],
});
const defaults = { intervalMs: 2000, timeoutMs: 1000, rise: 2, fall: 4 };

describe('pools[].additionalHealthChecks', () => {
  test('each entry is parsed and defaulted like healthCheck; healthChecksOf gives healthCheck first', () => {
    const fleet = parseFleet(
      fleetWith({
        healthCheck: { type: 'https', path: '/healthz' },
        additionalHealthChecks: [
          { type: 'tcp', port: 9100, fall: 2 },
          { type: 'udp', port: 53 },
        ],
      }),
    );
    const pool = fleet.pools[0];
    expect(pool?.additionalHealthChecks).toEqual([
      { type: 'tcp', port: 9100, ...defaults, fall: 2 },
      { type: 'udp', port: 53, payload: '', ...defaults },
    ]);
    expect(pool && healthChecksOf(pool).map((c) => c.type)).toEqual(['https', 'tcp', 'udp']);
    // A parsed fleet is a fleet file: it parses again to itself.
    expect(parseFleet(JSON.parse(JSON.stringify(fleet)))).toEqual(fleet);
  });

  test('absent or empty: not written back (older nodes keep reading the fleet)', () => {
    for (const extra of [{}, { additionalHealthChecks: [] }]) {
      const pool = parseFleet(fleetWith({ healthCheck: { type: 'tcp' }, ...extra })).pools[0];
      expect(pool && 'additionalHealthChecks' in pool).toBe(false);
      expect(pool && healthChecksOf(pool)).toHaveLength(1);
    }
  });

  test.each([
    ['not a list', { type: 'tcp' }, 'pools[0].additionalHealthChecks: {"type":"tcp"} is not a list of health checks'],
    [
      'too many',
      Array.from({ length: MAX_ADDITIONAL_HEALTH_CHECKS + 1 }, (_, i) => ({ type: 'tcp', port: 9000 + i })),
      `pools[0].additionalHealthChecks: 4 checks are more than ${MAX_ADDITIONAL_HEALTH_CHECKS}`,
    ],
    [
      'a none check',
      [{ type: 'none' }],
      'pools[0].additionalHealthChecks[0].type: "none" passes always: it adds nothing',
    ],
    [
      'the same check as healthCheck',
      [{ type: 'http', path: '/' }],
      'pools[0].additionalHealthChecks[0]: the same check as healthCheck: it would only double the probes',
    ],
    [
      'the same check twice',
      [
        { type: 'tcp', port: 9100 },
        { type: 'tcp', port: 9100 },
      ],
      'pools[0].additionalHealthChecks[1]: the same check as additionalHealthChecks[0]',
    ],
    ['a bad field inside', [{ type: 'tcp', port: 70_000 }], 'pools[0].additionalHealthChecks[0].port: 70000'],
    ['null', [null], 'pools[0].additionalHealthChecks[0]: null is not an object'],
    [
      'an unknown field inside',
      [{ type: 'tcp', prot: 9100 }],
      'pools[0].additionalHealthChecks[0].prot: is not a known field',
    ],
  ])('refused: %s', (_name, extra, expected) => {
    expect(problems(fleetWith({ healthCheck: { type: 'http' }, additionalHealthChecks: extra }))).toContainEqual(
      expect.stringContaining(expected),
    );
  });

  test('refused beside healthCheck none: the pool is unchecked', () => {
    expect(
      problems(fleetWith({ healthCheck: { type: 'none' }, additionalHealthChecks: [{ type: 'tcp' }] })),
    ).toContainEqual(expect.stringContaining('pools[0].additionalHealthChecks: the pool\'s healthCheck is "none"'));
  });

  test('each check gets the rules of a check: a wrong transport names its own path', () => {
    expect(
      problems(fleetWith({ healthCheck: { type: 'udp' }, additionalHealthChecks: [{ type: 'http' }] }, 'udp')),
    ).toEqual([
      expect.stringContaining(
        'pools[0].additionalHealthChecks[0].type: "http" probes TCP on the member\'s port but vips[0] 198.51.100.10:443/udp is udp: set additionalHealthChecks[0].port to',
      ),
    ]);
    expect(
      problems(
        fleetWith({
          healthCheck: { type: 'tcp' },
          additionalHealthChecks: [{ type: 'tcp', port: 9100, timeoutMs: 2000 }],
        }),
      ),
    ).toContainEqual(expect.stringContaining('pools[0].additionalHealthChecks[0].timeoutMs: 2000 equals intervalMs'));
  });

  test('diffFleets names a change of the additional checks without counting the pool changed (not a table input)', () => {
    const before = parseFleet(fleetWith({ healthCheck: { type: 'tcp' } }));
    const after = parseFleet(
      fleetWith({ healthCheck: { type: 'tcp' }, additionalHealthChecks: [{ type: 'tcp', port: 9100 }] }),
    );
    const diff = diffFleets(before, after);
    expect(diff.changes).toEqual([
      expect.objectContaining({
        kind: 'changed',
        subject: 'pool web',
        detail: expect.stringContaining('additionalHealthChecks [] -> [{"type":"tcp","intervalMs":2000'),
      }),
    ]);
    expect([...diff.poolsChanged]).toEqual([]);
  });

  test('checkLabel names a check only when a member has more than one, or when it probes an address of its own', () => {
    const tcp = { type: 'tcp' as const, port: 9100, ...defaults };
    expect(checkLabel(tcp, 0, 1)).toBe('');
    expect(checkLabel(tcp, 1, 2)).toBe('check 2 of 2 (tcp port 9100)');
    const db = { ...tcp, address: '198.18.3.50', port: 5432 };
    expect(checkLabel(db, 0, 1)).toBe('check (tcp at 198.18.3.50 port 5432)');
    expect(checkLabel(db, 1, 2)).toBe('check 2 of 2 (tcp at 198.18.3.50 port 5432)');
  });
});
