import { describe, expect, test } from 'vitest';
import { diffFleets } from './diff.js';
import { explainFlow } from './explain.js';
import { parseFleet } from './parse.js';
import { problems } from './problems.test-helper.js';
import { backupsServe, buildVipTable } from './table.js';
import type { MemberStatus } from './types.js';

const members = [
  { name: 'a', address: '198.18.0.21', port: 80 },
  { name: 'b', address: '198.18.0.22', port: 80 },
  { name: 'c', address: '198.18.0.23', port: 80 },
  { name: 's', address: '198.18.0.29', port: 80, backup: true },
];
const fleetWith = (extra: object = {}) =>
  parseFleet({
    hashSeed: 7,
    pools: [{ name: 'web', members, ...extra }],
    vips: [{ address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web', tableSize: 251 }],
  });
const down = (...names: string[]) => new Map(names.map((n) => [`web/${n}`, 'down' as MemberStatus]));
const slotsOf = (fleet: ReturnType<typeof fleetWith>, decided: Map<string, MemberStatus>) => {
  const t = buildVipTable(fleet, fleet.vips[0] as (typeof fleet.vips)[number], decided);
  const count = new Map<string, number>();
  for (const i of t.slots) count.set(t.backends[i]?.name ?? '-', (count.get(t.backends[i]?.name ?? '-') ?? 0) + 1);
  return count;
};

describe('pools[].minActiveMembers (priority group activation)', () => {
  test('absent and 1 are the default and not written back; 2 and more are kept', () => {
    expect(fleetWith().pools[0]).not.toHaveProperty('minActiveMembers');
    expect(fleetWith({ minActiveMembers: 1 }).pools[0]).not.toHaveProperty('minActiveMembers');
    expect(fleetWith({ minActiveMembers: 3 }).pools[0]?.minActiveMembers).toBe(3);
  });

  test('anything but a whole number of members 1-100,000 is refused naming the field and the value', () => {
    const pool = (v: unknown) => ({ pools: [{ name: 'web', members, minActiveMembers: v }] });
    for (const [v, shown] of [
      [0, '0'],
      [1.5, '1.5'],
      ['2', '"2"'],
      [100_001, '100001'],
    ] as const) {
      expect(problems(pool(v))).toEqual([
        `pools[0].minActiveMembers: ${shown} is not a number of members (1-100000: backups take flows while fewer primaries do)`,
      ]);
    }
  });

  test('the backup takes slots once fewer primaries than the setting take flows, beside the primaries left', () => {
    const two = fleetWith({ minActiveMembers: 2 });
    const one = fleetWith();
    expect(slotsOf(two, down()).get('s')).toBeUndefined();
    expect(slotsOf(two, down('c')).get('s')).toBeUndefined(); // a and b: 2 take flows
    const shared = slotsOf(two, down('b', 'c'));
    expect(shared.get('s')).toBeGreaterThan(0);
    expect(shared.get('a')).toBeGreaterThan(0);
    expect((shared.get('s') ?? 0) + (shared.get('a') ?? 0)).toBe(251);
    // The default activates it only when no primary takes flows.
    expect(slotsOf(one, down('b', 'c')).get('s')).toBeUndefined();
    expect(slotsOf(one, down('a', 'b', 'c')).get('s')).toBe(251);
    // A draining primary takes no new flows, so it does not count either.
    const drained = parseFleet({
      hashSeed: 7,
      pools: [
        {
          name: 'web',
          minActiveMembers: 2,
          members: members.map((m) => (m.name === 'a' ? { ...m, state: 'draining' } : m)),
        },
      ],
      vips: [],
    });
    expect(backupsServe(drained.pools[0] as (typeof drained.pools)[number], down('c'))).toBe(true);
  });

  test('diff names it and counts the pool as changed (its table moves); explain names the threshold', () => {
    const d = diffFleets(fleetWith(), fleetWith({ minActiveMembers: 3 }));
    expect(d.changes).toEqual([{ kind: 'changed', subject: 'pool web', detail: 'minActiveMembers 1 -> 3' }]);
    expect(d.poolsChanged).toEqual(['web']);
    const two = fleetWith({ minActiveMembers: 2 });
    for (let sport = 1_000; sport < 1_100; sport++) {
      const flow = { src: '198.18.9.9', sport, dst: '198.51.100.10', dport: 80, protocol: 'tcp' as const };
      const r = explainFlow(two, down('b', 'c'), flow);
      if (r.backend !== 's') continue;
      expect(r.why[1]).toMatch(
        /^slot \d+ belongs to s \(a backup: fewer than 2 primaries take flows, minActiveMembers\)/,
      );
      return;
    }
    throw new Error('no flow of 100 reached the backup');
  });
});
