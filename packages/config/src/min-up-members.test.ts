import { describe, expect, test } from 'vitest';
import { diffFleets } from './diff.js';
import { explainFlow } from './explain.js';
import { announcementChanges, enoughUp, notAnnouncedReason, usableMembers } from './min-up-members.js';
import { parseFleet } from './parse.js';
import { problems } from './problems.test-helper.js';
import { NO_RAMPS } from './slow-start.js';
import type { MemberStatus, Pool } from './types.js';

const members = [
  { name: 'a', address: '198.18.0.21', port: 80 },
  { name: 'b', address: '198.18.0.22', port: 80 },
  { name: 'c', address: '198.18.0.23', port: 80, state: 'draining' },
  { name: 's', address: '198.18.0.29', port: 80, backup: true },
];
const fleetWith = (extra: object = {}) =>
  parseFleet({
    hashSeed: 7,
    pools: [{ name: 'web', healthCheck: { type: 'tcp' }, members, ...extra }],
    vips: [{ address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web', tableSize: 251 }],
  });
const down = (...names: string[]) => new Map(names.map((n) => [`web/${n}`, 'down' as MemberStatus]));
const poolOf = (fleet: ReturnType<typeof fleetWith>) => fleet.pools[0] as Pool;
const names = (pool: Pool, decided: Map<string, MemberStatus>) => usableMembers(pool, decided).map((m) => m.name);

describe('pools[].minUpMembers (announce while enough members take new flows)', () => {
  test('absent and 1 are the default and not written back; more is kept', () => {
    expect(poolOf(fleetWith())).not.toHaveProperty('minUpMembers');
    expect(poolOf(fleetWith({ minUpMembers: 1 }))).not.toHaveProperty('minUpMembers');
    expect(poolOf(fleetWith({ minUpMembers: 2 })).minUpMembers).toBe(2);
  });

  test('anything but a whole number up to the pool size is refused naming the field and the value', () => {
    const pool = (v: unknown) => ({ pools: [{ name: 'web', members, minUpMembers: v }] });
    for (const [v, shown] of [
      [0, '0'],
      [2.5, '2.5'],
      ['2', '"2"'],
      [100_001, '100001'],
    ] as const) {
      expect(problems(pool(v))).toEqual([
        `pools[0].minUpMembers: ${shown} is not a number of members (1-100000: the pool's VIPs are announced while at least this many members take new flows)`,
      ]);
    }
    expect(problems(pool(5))).toEqual([
      "pools[0].minUpMembers: 5 is more than the pool's 4 members: its VIPs would never be announced",
    ]);
  });

  test('members taking new flows: active and not decided down; a backup only while the backups serve', () => {
    const pool = poolOf(fleetWith());
    expect(names(pool, down())).toEqual(['a', 'b']); // c drains, s waits
    expect(names(pool, down('a'))).toEqual(['b']);
    expect(names(pool, down('a', 'b'))).toEqual(['s']);
    expect(names(pool, down('a', 'b', 's'))).toEqual([]);
    expect(usableMembers(pool, down(), NO_RAMPS)).toHaveLength(2);
  });

  test('enough: at least one, and at least the setting', () => {
    const two = poolOf(fleetWith({ minUpMembers: 2 }));
    expect([0, 1, 2, 3].map((n) => enoughUp(two, n))).toEqual([false, false, true, true]);
    const plain = poolOf(fleetWith());
    expect([0, 1].map((n) => enoughUp(plain, n))).toEqual([false, true]);
  });

  test('diff names it without counting the pool as changed (no table moves); explain says the VIP is withdrawn', () => {
    const d = diffFleets(fleetWith(), fleetWith({ minUpMembers: 2 }));
    expect(d.changes).toEqual([
      {
        kind: 'changed',
        subject: 'pool web',
        detail: 'minUpMembers 1 -> 2 (VIPs announced while at least that many members take new flows)',
      },
    ]);
    expect(d.poolsChanged).toEqual([]);
    const two = fleetWith({ minUpMembers: 2 });
    const flow = { src: '198.18.9.9', sport: 1_000, dst: '198.51.100.10', dport: 80, protocol: 'tcp' as const };
    const withdrawn = explainFlow(two, down('a'), flow);
    expect(withdrawn.backend).toBe('b');
    expect(withdrawn.why.at(-1)).toBe(
      "only 1 member takes new flows, fewer than the pool's minUpMembers 2: no node announces the VIP (another site announcing it takes its traffic); a flow that still reaches a node goes to b",
    );
    expect(explainFlow(two, down(), flow).why.join('\n')).not.toContain('minUpMembers');
  });

  test("what an apply does to the routes: withdrawn (and why) or announced again; added VIPs are the diff's", () => {
    const plain = fleetWith();
    const vipOf = (f: ReturnType<typeof fleetWith>) => f.vips[0] as (typeof f.vips)[number];
    expect(notAnnouncedReason(plain, vipOf(plain), down())).toBeUndefined();
    const two = fleetWith({ minUpMembers: 3 });
    expect(announcementChanges(plain, two, down())).toEqual([
      {
        vip: '198.51.100.10:80/tcp',
        announced: false,
        reason: "only 2 members take new flows, fewer than the pool's minUpMembers 3",
      },
    ]);
    expect(announcementChanges(two, plain, down())).toEqual([{ vip: '198.51.100.10:80/tcp', announced: true }]);
    const off = parseFleet({ ...plain, vips: [{ ...vipOf(plain), state: 'disabled' }] });
    expect(announcementChanges(plain, off, down())[0]?.reason).toBe('the VIP is disabled');
    expect(notAnnouncedReason(plain, vipOf(plain), down('a', 'b', 's'))).toBe('no member takes new flows');
    expect(announcementChanges(undefined, plain, down())).toEqual([]);
    const more = parseFleet({ ...plain, vips: [...plain.vips, { ...vipOf(plain), port: 81 }] });
    expect(announcementChanges(plain, more, down())).toEqual([]);
  });
});

describe('pools[].minUpMembers - many VIPs on one pool', () => {
  test('announcementChanges counts each pool of each fleet once, not once per VIP', () => {
    // `l4fleet apply` asks for every VIP of both fleets: a walk of the pool per VIP was VIPs x members (600 VIPs on a
    // 100,000-member pool: 133 s). Count the walks of the pool's members instead of timing them.
    const vips = Array.from({ length: 40 }, (_, i) => ({
      address: '198.51.100.10',
      port: 1_000 + i,
      protocol: 'tcp',
      pool: 'web',
      tableSize: 251,
    }));
    const before = parseFleet({ ...fleetWith(), vips });
    const after = parseFleet({ ...fleetWith({ minUpMembers: 3 }), vips });
    const walks = { before: 0, after: 0 };
    const counted = (f: typeof before, which: keyof typeof walks): typeof before => ({
      ...f,
      pools: f.pools.map(
        (p) =>
          new Proxy(p, {
            get(target, key, receiver) {
              if (key === 'members') walks[which]++;
              return Reflect.get(target, key, receiver);
            },
          }),
      ),
    });
    const changes = announcementChanges(counted(before, 'before'), counted(after, 'after'), down());
    expect(changes).toHaveLength(40);
    expect(changes[39]).toEqual({
      vip: '198.51.100.10:1039/tcp',
      announced: false,
      reason: "only 2 members take new flows, fewer than the pool's minUpMembers 3",
    });
    expect(walks.before).toBeLessThanOrEqual(4);
    expect(walks.after).toBeLessThanOrEqual(4);
  });
});
