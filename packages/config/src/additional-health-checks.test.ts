import { describe, expect, test } from 'vitest';
import {
  checkLabel,
  healthChecksOf,
  healthChecksRequiredOf,
  MAX_ADDITIONAL_HEALTH_CHECKS,
} from './additional-health-checks.js';
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

describe('pools[].healthChecksRequired', () => {
  const three = {
    healthCheck: { type: 'http' },
    additionalHealthChecks: [
      { type: 'tcp', port: 9100 },
      { type: 'tcp', port: 9200 },
    ],
  };

  test('kept below the number of checks; absent or equal to it means all and is not written back', () => {
    const pool = parseFleet(fleetWith({ ...three, healthChecksRequired: 2 })).pools[0];
    expect(pool?.healthChecksRequired).toBe(2);
    expect(pool && healthChecksRequiredOf(pool)).toBe(2);
    expect(
      parseFleet(JSON.parse(JSON.stringify(parseFleet(fleetWith({ ...three, healthChecksRequired: 2 }))))).pools[0]
        ?.healthChecksRequired,
    ).toBe(2);
    for (const extra of [{}, { healthChecksRequired: 3 }]) {
      const all = parseFleet(fleetWith({ ...three, ...extra })).pools[0];
      expect(all && 'healthChecksRequired' in all).toBe(false);
      expect(all && healthChecksRequiredOf(all)).toBe(3);
    }
    expect(healthChecksRequiredOf({ healthCheck: { type: 'tcp', ...defaults } })).toBe(1);
  });

  test.each([
    ['zero', 0, "pools[0].healthChecksRequired: 0 is not a number of checks from 1 to the pool's 3"],
    ['more than the checks', 4, "pools[0].healthChecksRequired: 4 is not a number of checks from 1 to the pool's 3"],
    ['a fraction', 1.5, 'pools[0].healthChecksRequired: 1.5 is not a number of checks'],
    ['a string', 'all', 'pools[0].healthChecksRequired: "all" is not a number of checks'],
  ])('refused: %s', (_name, value, message) => {
    expect(problems(fleetWith({ ...three, healthChecksRequired: value }))).toContainEqual(
      expect.stringContaining(message),
    );
  });

  test('refused without additionalHealthChecks; not reported again when additionalHealthChecks itself is refused', () => {
    expect(problems(fleetWith({ healthCheck: { type: 'tcp' }, healthChecksRequired: 1 }))).toContainEqual(
      expect.stringContaining('pools[0].healthChecksRequired: 1: the pool has one check (healthCheck alone)'),
    );
    const refused = problems(
      fleetWith({ healthCheck: { type: 'tcp' }, additionalHealthChecks: [{ type: 'none' }], healthChecksRequired: 1 }),
    );
    expect(refused).toContainEqual(expect.stringContaining('pools[0].additionalHealthChecks[0].type'));
    expect(refused.filter((m) => m.includes('healthChecksRequired'))).toEqual([]);
  });

  test('diffFleets names the change (all <-> N), not a table input', () => {
    const before = parseFleet(fleetWith(three));
    const after = parseFleet(fleetWith({ ...three, healthChecksRequired: 1 }));
    const diff = diffFleets(before, after);
    expect(diff.changes).toEqual([{ kind: 'changed', subject: 'pool web', detail: 'healthChecksRequired all -> 1' }]);
    expect([...diff.poolsChanged]).toEqual([]);
    expect(diffFleets(after, before).changes.map((c) => c.detail)).toEqual(['healthChecksRequired 1 -> all']);
  });
});
