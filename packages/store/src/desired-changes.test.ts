import { type Fleet, parseFleet } from '@l4fleet/config';
import { beforeEach, describe, expect, test, vi } from 'vitest';
import { desiredChanges } from './desired-changes.js';
import { StoreError } from './errors.js';
import { MemoryFleetStore } from './memory-store.js';

/** Every read of a fleet and every diff, in order: how many fleets the walk holds at once. */
const events: string[] = [];
vi.mock('@l4fleet/config', async (importOriginal) => {
  const real = await importOriginal<typeof import('@l4fleet/config')>();
  return {
    ...real,
    diffFleets: (before: Fleet, after: Fleet) => {
      events.push('diff');
      return real.diffFleets(before, after);
    },
  };
});

const fleetWith = (members: number) =>
  parseFleet({
    hashSeed: 1,
    pools: [
      {
        name: 'web',
        members: Array.from({ length: members }, (_, i) => ({ address: `198.18.0.${i + 1}`, port: 80 })),
      },
    ],
    vips: [{ address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web' }],
  });

/** A memory store with `n` writes (1..n members), whose getDesiredAt() logs each read. */
async function storeWith(n: number): Promise<MemoryFleetStore> {
  const store = new MemoryFleetStore();
  for (let i = 1; i <= n; i++) await store.apply(fleetWith(i));
  const at = store.getDesiredAt.bind(store);
  store.getDesiredAt = async (revision) => {
    events.push('read');
    return at(revision);
  };
  return store;
}

describe('store desired changes', () => {
  beforeEach(() => {
    events.length = 0;
  });

  test('store desired changes - each write is diffed as the walk reaches it: at most two fleets held at once', async () => {
    const store = await storeWith(6);
    const h = await desiredChanges(store, 5);
    expect(h.revisions.map((r) => r.changes?.length)).toEqual([1, 1, 1, 1, 1]);
    let held = 0;
    for (const e of events) {
      held = e === 'read' ? held + 1 : held - 1;
      expect(held, events.join(' ')).toBeLessThanOrEqual(2);
    }
    expect(events.filter((e) => e === 'read')).toHaveLength(6);
  });

  test.each(['UNAVAILABLE', 'TIMEOUT'] as const)(
    'store desired changes - %s reading a write fails the listing, not shown as a write that does not read',
    async (code) => {
      const store = await storeWith(3);
      const second = (await store.getDesiredHistory({ limit: 3 })).revisions[1]?.revision;
      const at = store.getDesiredAt.bind(store);
      store.getDesiredAt = async (revision) => {
        if (revision === second) throw new StoreError(code, `etcd: ${code}`);
        return at(revision);
      };
      await expect(desiredChanges(store, 3)).rejects.toMatchObject({ code });
    },
  );

  test.each(['INVALID_RECORD', 'COMPACTED'] as const)(
    'store desired changes - %s reading a write leaves its changes and the next one unknown, saying which',
    async (code) => {
      const store = await storeWith(3);
      const [, second] = (await store.getDesiredHistory({ limit: 3 })).revisions.map((r) => r.revision);
      const at = store.getDesiredAt.bind(store);
      store.getDesiredAt = async (revision) => {
        if (revision === second) throw new StoreError(code, `desired/current: ${code}`);
        return at(revision);
      };
      const h = await desiredChanges(store, 3);
      expect(h.revisions.map((r) => r.changes === null)).toEqual([true, true, true]);
      expect(h.revisions[0]?.note).toBe('the write before it does not read');
      expect(h.revisions[1]?.note).toBe(`this write does not read: desired/current: ${code}`);
      expect(h.revisions[2]?.note).toBe('first write');
    },
  );

  test('store desired changes - a write after a hand deletion of the pointer is not called the first', async () => {
    const store = await storeWith(2);
    const history = store.getDesiredHistory.bind(store);
    // What the etcd store answers after a recover of a deleted pointer: the walk ends at the deletion.
    store.getDesiredHistory = async (o) => ({ ...(await history(o)), pointerDeleted: true });
    const h = await desiredChanges(store, 10);
    expect(h.pointerDeleted).toBe(true);
    expect(h.revisions.at(-1)?.note).toBe(
      'the pointer was deleted before this write; earlier writes may still be readable with `l4fleet get fleet --revision R`',
    );
    expect(h.revisions[0]?.changes).toHaveLength(1);
  });
});
