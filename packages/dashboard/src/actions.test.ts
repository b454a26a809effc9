/** The page's writes over the memory store: what an edit that changes nothing writes and returns. */
import { parseFleet } from '@l4fleet/config';
import { MemoryFleetStore } from '@l4fleet/store';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { createActions, REFUSED_RECORDED_PER_MINUTE, TARGET_MAX_CHARS } from './actions.js';
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

describe('dashboard actions - refused writes', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  test('refused writes past the limit a minute are counted, then summed up in one entry when the minute ends', async () => {
    vi.useFakeTimers({ now: Date.UTC(2026, 11, 6, 4, 0, 0) });
    const timeline = createTimeline();
    const actions = createActions(await fleetStore(), timeline);
    try {
      for (let i = 0; i < 600; i++) actions.refused('node drain', 'n1', 'authorization: missing', `198.18.0.${i % 3}`);
      const refused = () => timeline.list().filter((e) => e.data.result === 'refused');
      expect(refused()).toHaveLength(REFUSED_RECORDED_PER_MINUTE);
      await vi.advanceTimersByTimeAsync(60_000);
      expect(refused()).toHaveLength(REFUSED_RECORDED_PER_MINUTE + 1);
      expect(refused().at(-1)?.data).toEqual({
        action: 'writes',
        target: '',
        result: 'refused',
        from: '198.18.0.1, 198.18.0.2, 198.18.0.0',
        count: 600 - REFUSED_RECORDED_PER_MINUTE,
        error: `and ${600 - REFUSED_RECORDED_PER_MINUTE} more refused from 2026-12-06T04:00:00.000Z (at most ${REFUSED_RECORDED_PER_MINUTE} a minute are recorded one by one)`,
      });
      // A new minute: recorded one by one again.
      actions.refused('node drain', 'n1', 'authorization: missing', '198.18.0.9');
      expect(refused()).toHaveLength(REFUSED_RECORDED_PER_MINUTE + 2);
    } finally {
      actions.close();
    }
  });

  test('a wall clock stepped back opens the next minute on time: refused writes are recorded one by one again', async () => {
    vi.useFakeTimers({ now: Date.UTC(2026, 11, 6, 4, 0, 0) });
    const timeline = createTimeline();
    const actions = createActions(await fleetStore(), timeline);
    try {
      const refused = () => timeline.list().filter((e) => e.data.result === 'refused');
      for (let i = 0; i <= REFUSED_RECORDED_PER_MINUTE; i++)
        actions.refused('node drain', 'n1', 'no token', '198.18.0.1');
      await vi.advanceTimersByTimeAsync(60_000);
      expect(refused()).toHaveLength(REFUSED_RECORDED_PER_MINUTE + 1);
      // NTP steps the wall clock back an hour (Date only: the timers and performance.now() go on).
      vi.setSystemTime(Date.now() - 3_600_000);
      for (let i = 0; i <= REFUSED_RECORDED_PER_MINUTE; i++)
        actions.refused('node drain', 'n1', 'no token', '198.18.0.2');
      expect(refused()).toHaveLength(2 * REFUSED_RECORDED_PER_MINUTE + 1);
      // The one past the limit is summed up when that minute ends, not an hour later; the time shown is the wall's.
      await vi.advanceTimersByTimeAsync(60_000);
      expect(refused()).toHaveLength(2 * REFUSED_RECORDED_PER_MINUTE + 2);
      expect(refused().at(-1)?.data.error).toBe(
        `and 1 more refused from 2026-12-06T03:01:00.000Z (at most ${REFUSED_RECORDED_PER_MINUTE} a minute are recorded one by one)`,
      );
    } finally {
      actions.close();
    }
  });

  test("a refused write's target (from the URL) is cut to a bounded length", async () => {
    const timeline = createTimeline();
    const actions = createActions(await fleetStore(), timeline);
    actions.refused('vip drain', 'x'.repeat(5_000), 'authorization: missing', '127.0.0.1');
    actions.close();
    const target = timeline.list()[0]?.data.target as string;
    expect(target).toBe(`${'x'.repeat(TARGET_MAX_CHARS)}… (5000 characters)`);
  });
});
