/** The page's writes over the memory store: what an edit that changes nothing writes and returns. */
import { parseFleet } from '@l4fleet/config';
import { MemoryFleetStore } from '@l4fleet/store';
import { describe, expect, test } from 'vitest';
import { createActions } from './actions.js';
import { createTimeline } from './timeline.js';

async function fleetStore(): Promise<MemoryFleetStore> {
  const store = new MemoryFleetStore();
  await store.apply(
    parseFleet({
      hashSeed: 5,
      pools: [{ name: 'web', members: [{ name: 'a', address: '198.18.0.21', port: 80 }] }],
      vips: [{ address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web', tableSize: 251 }],
    }),
  );
  return store;
}

describe('dashboard actions - member state', () => {
  test('a member set to the state it has: nothing written, no revision returned (as a VIP edit)', async () => {
    const store = await fleetStore();
    const actions = createActions(store, createTimeline());
    const before = (await store.getDesired()).revision;
    expect(await actions.setMemberState('web', 'a', 'enable', '127.0.0.1')).toEqual({
      action: 'member enable',
      target: 'web/a',
    });
    expect((await store.getDesired()).revision).toBe(before);
    const drained = await actions.setMemberState('web', 'a', 'drain', '127.0.0.1');
    expect(drained.revision).toBe(before + 1);
    expect(await actions.setMemberState('web', 'a', 'drain', '127.0.0.1')).toEqual({
      action: 'member drain',
      target: 'web/a',
    });
    expect((await store.getDesired()).revision).toBe(before + 1);
  });
});
