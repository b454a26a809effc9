import { parseFleet } from '@l4fleet/config';
import { describeStoreContract } from '@l4fleet/test-support/store-contract';
import { describe, expect, test } from 'vitest';
import { MemoryFleetStore } from './memory-store.js';

const fleet = (n: number) =>
  parseFleet({
    pools: [
      { name: 'web', members: Array.from({ length: n }, (_, i) => ({ address: `198.18.0.${i + 1}`, port: 80 })) },
    ],
  });

// The behaviour shared with the etcd store is asserted by the contract suite (run here and, against a real etcd, in
// store-contract.int.test.ts); these tests cover what only the fake has (expireNode).
describeStoreContract('memory fake', async () => {
  const store = new MemoryFleetStore();
  return {
    open: () => store.client(),
    corruptPointer: async (hashSeed) => store.corruptDesired(hashSeed),
    compact: async (revision) => store.compactDesiredHistory(revision),
  };
});

describe('store - memory fake', () => {
  test('revision guard, seed kept, watchers see each apply', async () => {
    const s = new MemoryFleetStore();
    const seen: number[] = [];
    await s.watchDesired({ onUpdate: (d) => seen.push(d.revision) });
    const r1 = await s.apply(fleet(1), { expectRevision: 0 });
    await expect(s.apply(fleet(2), { expectRevision: 0 })).rejects.toMatchObject({ code: 'CONFLICT' });
    const r2 = await s.apply(fleet(2), { expectRevision: r1.revision });
    expect(r2.hashSeed).toBe(r1.hashSeed);
    expect(seen).toEqual([0, r1.revision, r2.revision]);
  });

  test('registration, drain and expiry', async () => {
    const s = new MemoryFleetStore();
    const reg = await s.registerNode({ name: 'lb1' });
    await reg.reportHealth(new Map([['web/a', 'down']]));
    await s.setNodeDrain('lb1', true);
    expect((await s.listNodes())[0]).toMatchObject({ name: 'lb1', drained: true });
    s.expireNode('lb1');
    expect(await s.listHealthReports()).toEqual([]);
    expect((await s.listNodes())[0]).toMatchObject({ name: 'lb1', record: undefined, drained: true });
  });

  test('election hands over on resign; decided writes need leadership', async () => {
    const s = new MemoryFleetStore();
    const a = await s.campaign('a');
    const pb = s.campaign('b');
    expect(await s.getLeader()).toBe('a');
    await s.writeDecided(new Map([['web/x', 'down']]), { leadership: a });
    await a.resign();
    await expect(s.writeDecided(new Map([['web/x', 'up']]), { leadership: a })).rejects.toMatchObject({
      code: 'LEASE_LOST',
    });
    const b = await pb;
    expect(await s.getLeader()).toBe('b');
    expect((await s.getDecided()).decided.get('web/x')).toBe('down');
    await b.resign();
  });
});
