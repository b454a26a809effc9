import { parseFleet } from '@l4fleet/config';
import { describe, expect, test } from 'vitest';
import { MemoryFleetStore } from './memory-store.js';
import { editPoolMembers, MAX_POOL_EDIT_ATTEMPTS } from './pool-edit.js';

const FLEET = parseFleet({
  pools: [
    {
      name: 'web',
      members: [
        { name: 'a', address: '198.18.0.1', port: 80 },
        { name: 'b', address: '198.18.0.2', port: 80 },
      ],
    },
  ],
  vips: [{ address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web' }],
});

async function storeWithFleet(): Promise<{ store: MemoryFleetStore; revision: number }> {
  const store = new MemoryFleetStore();
  const { revision } = await store.apply(FLEET, { expectRevision: 0 });
  return { store, revision };
}

const weightOfB = (w: number) => (pool: { members: readonly { name: string }[] }) =>
  pool.members.map((m) => (m.name === 'b' ? { ...m, weight: w } : m)) as never;

describe('editPoolMembers', () => {
  test('writes the edited pool guarded by the revision read; returns both fleets and the new revision', async () => {
    const { store, revision } = await storeWithFleet();
    const r = await editPoolMembers(store, 'web', weightOfB(3));
    if ('unchanged' in r) throw new Error('expected a write');
    expect(r.revision).toBeGreaterThan(revision);
    expect(r.before.pools[0]?.members[1]?.weight).toBe(1);
    expect(r.after.pools[0]?.members[1]?.weight).toBe(3);
    expect((await store.getDesired()).fleet.pools[0]?.members[1]?.weight).toBe(3);
  });

  test('a dry run validates, checks and returns both fleets at the revision read, and writes nothing', async () => {
    const { store, revision } = await storeWithFleet();
    let checked = 0;
    const r = await editPoolMembers(store, 'web', weightOfB(3), { dryRun: true, check: () => void checked++ });
    expect(r).toMatchObject({ dryRun: true, revision });
    if (!('dryRun' in r)) throw new Error('expected a preview');
    expect(r.after.pools[0]?.members[1]?.weight).toBe(3);
    expect(checked).toBe(1);
    expect((await store.getDesired()).revision).toBe(revision);
    await expect(editPoolMembers(store, 'web', weightOfB(70_000), { dryRun: true })).rejects.toThrow(/weight/);
  });

  test('an edit that needs no write writes nothing and says why, at the revision read', async () => {
    const { store, revision } = await storeWithFleet();
    const r = await editPoolMembers(store, 'web', () => ({ unchanged: 'web/b is 1 already' }));
    expect(r).toEqual({ unchanged: 'web/b is 1 already', revision });
    expect((await store.getDesired()).revision).toBe(revision);
  });

  test('a missing pool is NOT_FOUND naming it; a fleet parseFleet refuses, or a failed check, writes nothing', async () => {
    const { store, revision } = await storeWithFleet();
    await expect(editPoolMembers(store, 'nope', weightOfB(3))).rejects.toMatchObject({
      code: 'NOT_FOUND',
      message: `pool "nope": does not exist (revision ${revision})`,
    });
    await expect(editPoolMembers(store, 'web', weightOfB(70_000))).rejects.toThrow(/weight/);
    await expect(
      editPoolMembers(store, 'web', weightOfB(3), {
        check: () => {
          throw new Error('refused by the caller');
        },
      }),
    ).rejects.toThrow('refused by the caller');
    expect((await store.getDesired()).revision).toBe(revision);
  });

  test('a concurrent change is read again and the edit applied to it; past the attempts, CONFLICT', async () => {
    const { store } = await storeWithFleet();
    // Another writer lands between this edit's read and its write, once: the second attempt edits the new fleet.
    let interleaved = 0;
    const racing = new Proxy(store, {
      get(target, prop, receiver) {
        if (prop === 'getDecided') {
          return async () => {
            if (interleaved++ === 0) {
              const cur = await target.getDesired();
              const renamed = { ...cur.fleet, pools: cur.fleet.pools.map((p) => ({ ...p, guePort: 7000 })) };
              await target.apply(parseFleet(renamed), { expectRevision: cur.revision });
            }
            return target.getDecided();
          };
        }
        const v = Reflect.get(target, prop, receiver);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
    const r = await editPoolMembers(racing, 'web', weightOfB(4));
    if ('unchanged' in r) throw new Error('expected a write');
    expect(interleaved).toBe(2);
    const stored = (await store.getDesired()).fleet.pools[0];
    expect(stored?.guePort).toBe(7000); // the other writer's change is kept
    expect(stored?.members[1]?.weight).toBe(4);

    // A writer that always wins: CONFLICT after MAX_POOL_EDIT_ATTEMPTS reads, naming the pool.
    let reads = 0;
    const losing = new Proxy(store, {
      get(target, prop, receiver) {
        if (prop === 'getDesired') {
          return async () => {
            reads += 1;
            return target.getDesired();
          };
        }
        if (prop === 'getDecided') {
          return async () => {
            const cur = await target.getDesired();
            await target.apply(cur.fleet, { expectRevision: cur.revision });
            return target.getDecided();
          };
        }
        const v = Reflect.get(target, prop, receiver);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
    await expect(editPoolMembers(losing, 'web', weightOfB(5))).rejects.toMatchObject({
      code: 'CONFLICT',
      message: `pool "web": the fleet changed concurrently ${MAX_POOL_EDIT_ATTEMPTS} times`,
    });
    expect(reads).toBe(MAX_POOL_EDIT_ATTEMPTS);
    expect((await store.getDesired()).fleet.pools[0]?.members[1]?.weight).toBe(4);
  });
});
