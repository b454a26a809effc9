/** The live view over a store that is down, hung or up at the dashboard's start (manual clock). */
import { createManualClock } from '@l4fleet/agent';
import { buildVipTable, parseFleet, type Vip, vipKey } from '@l4fleet/config';
import { type DesiredState, MemoryFleetStore, StoreError, type Watch, type WatchListener } from '@l4fleet/store';
import pino from 'pino';
import { describe, expect, test, vi } from 'vitest';
import { buildFleetView, createVipTableCache, type FleetView, type VipTableCache } from './fleet-view.js';
import { type LiveFleet, watchFleet } from './live-fleet.js';

const logger = pino({ level: 'silent' });
const VIP = '198.51.100.10:80/tcp';

/** The memory store, as etcd would look down (refusing), hung (accepting, never answering) or up. */
class OutageStore extends MemoryFleetStore {
  mode: 'down' | 'hung' | 'up' = 'down';
  watchAttempts = 0;
  openWatches = 0;
  /** Answers the hung attempts (in the order they were made). */
  readonly hung: (() => void)[] = [];

  override async watchDesired(listener: WatchListener<DesiredState>): Promise<Watch> {
    this.watchAttempts += 1;
    if (this.mode === 'down') throw new StoreError('UNAVAILABLE', 'etcd watch desired state: 14 UNAVAILABLE: refused');
    if (this.mode === 'hung') await new Promise<void>((resolve) => this.hung.push(resolve));
    const w = await super.watchDesired(listener);
    this.openWatches += 1;
    return {
      close: async () => {
        this.openWatches -= 1;
        await w.close();
      },
    };
  }

  override async getLeader(): Promise<string | undefined> {
    if (this.mode === 'down') throw new StoreError('UNAVAILABLE', 'etcd read leader: refused');
    if (this.mode === 'hung') return new Promise(() => undefined);
    return super.getLeader();
  }
}

async function outageStore(): Promise<OutageStore> {
  const store = new OutageStore();
  await store.apply(
    parseFleet({
      hashSeed: 5,
      pools: [{ name: 'web', members: [{ name: 'a', address: '198.18.0.21', port: 80 }] }],
      vips: [{ address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web', tableSize: 251 }],
    }),
  );
  return store;
}

describe('live fleet - started while etcd is down', () => {
  test('serves a view that says nothing was read, retries every 2 s in one chain, fills in when etcd answers', async () => {
    const clock = createManualClock(Date.UTC(2026, 11, 4, 18, 0, 0));
    const store = await outageStore();
    let fleet: LiveFleet | undefined;
    try {
      fleet = await watchFleet(store, logger, { clock, intervalMs: 2_000, timeoutMs: 4_500, watchRetryMs: 2_000 });
      await clock.advance(100);
      expect(fleet.view().problems).toEqual([
        'etcd unreachable since 2026-12-04T18:00:00.000Z (etcd read leader: refused): nothing read from it yet',
      ]);
      expect(fleet.view().etcd).toMatchObject({ reachable: false, watching: false });
      expect(fleet.view().vips).toEqual([]);
      await clock.advance(10_000);
      expect(store.watchAttempts).toBe(6); // at 0, 2, 4, 6, 8, 10 s: one chain, not one per check
      expect(store.openWatches).toBe(0);

      store.mode = 'up';
      await clock.advance(2_000 + 100);
      expect(store.openWatches).toBe(1);
      expect(fleet.view().problems).toEqual([]);
      expect(fleet.view().etcd).toMatchObject({ reachable: true, watching: true });
      expect(fleet.view().vips.map((v) => v.key)).toEqual([VIP]);
      await clock.advance(10_000);
      expect(store.watchAttempts).toBe(7); // open: no more attempts
    } finally {
      await fleet?.close();
    }
    expect(store.openWatches).toBe(0);
    expect(clock.pending).toBe(0);
  });

  test('an attempt that hangs is given up after its bound and retried; what it opens late is closed', async () => {
    const clock = createManualClock();
    const store = await outageStore();
    store.mode = 'hung';
    const opening = watchFleet(store, logger, {
      clock,
      intervalMs: 2_000,
      timeoutMs: 4_500,
      watchRetryMs: 2_000,
      watchOpenTimeoutMs: 15_000,
    });
    await clock.advance(15_000);
    const fleet = await opening;
    try {
      expect(fleet.view().etcd.watching).toBe(false);
      expect(fleet.view().problems[0]).toMatch(/^etcd unreachable since .*: nothing read from it yet$/);
      store.mode = 'up';
      await clock.advance(2_000 + 100);
      expect(fleet.view().etcd.watching).toBe(true);
      expect(store.openWatches).toBe(1);
      for (const answer of store.hung) answer(); // the first attempt's watch opens now, long after it was given up
      await clock.advance(100);
      expect(store.openWatches).toBe(1);
      expect(fleet.view().vips.map((v) => v.key)).toEqual([VIP]);
    } finally {
      await fleet.close();
    }
    expect(store.openWatches).toBe(0);
  });

  test('close() during the outage stops the retries', async () => {
    const clock = createManualClock();
    const store = await outageStore();
    const fleet = await watchFleet(store, logger, { clock, watchRetryMs: 2_000 });
    await clock.advance(4_000);
    const attempts = store.watchAttempts;
    await fleet.close();
    await clock.advance(20_000);
    expect(store.watchAttempts).toBe(attempts);
    expect(clock.pending).toBe(0);
  });
});

describe('live fleet - rebuilds', () => {
  test("a decided status of one pool rebuilds that pool's VIP tables only; the view equals a full rebuild", async () => {
    const clock = createManualClock();
    const store = new MemoryFleetStore();
    await store.apply(
      parseFleet({
        hashSeed: 5,
        pools: [
          { name: 'web', members: [{ name: 'a', address: '198.18.0.21', port: 80 }] },
          {
            name: 'api',
            members: [
              { name: 'x', address: '198.18.0.31', port: 80 },
              { name: 'y', address: '198.18.0.32', port: 80 },
            ],
          },
        ],
        vips: [
          { address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web', tableSize: 251 },
          { address: '198.51.100.12', port: 80, protocol: 'tcp', pool: 'api', tableSize: 251 },
        ],
      }),
    );
    // The table builder, counted: a change must rebuild only the tables it reaches (a Maglev table is the costly part).
    const build = vi.fn(buildVipTable);
    const fleet = await watchFleet(store, logger, { clock, vipTables: createVipTableCache(build) });
    try {
      await clock.advance(100);
      const before = fleet.view();
      expect(before.vips.map((v) => v.key)).toEqual([VIP, '198.51.100.12:80/tcp']);
      build.mockClear();
      await store.writeDecided(new Map([['api/x', 'down']]));
      await clock.advance(100);
      expect(build.mock.calls.map((c) => vipKey(c[1] as Vip))).toEqual(['198.51.100.12:80/tcp']);
      expect(fleet.view().vips[1]?.checksum).not.toBe(before.vips[1]?.checksum);
      expect(fleet.view()).toEqual(buildFleetView(fleet.inputs()));
    } finally {
      await fleet.close();
      await store.close();
    }
  });
});

describe('live fleet - a rebuild that throws', () => {
  test('keeps the last view marked as held back, tells the subscribers once, warns once a minute (the rest counted) and recovers', async () => {
    const clock = createManualClock();
    const store = new MemoryFleetStore();
    await store.apply(
      parseFleet({
        hashSeed: 5,
        pools: [{ name: 'web', members: [{ name: 'a', address: '198.18.0.21', port: 80 }] }],
        vips: [{ address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web', tableSize: 251 }],
      }),
    );
    // The tables are built inside the view's build: a cache that throws makes the whole build throw.
    const cache = createVipTableCache();
    let failure: Error | undefined;
    const vipTables: VipTableCache = {
      forView(...args) {
        if (failure) throw failure;
        return cache.forView(...args);
      },
    };
    const log = pino({ level: 'silent' });
    const warn = vi.spyOn(log, 'warn');
    const fleet = await watchFleet(store, log, { clock, vipTables });
    const seen: FleetView[] = [];
    const flip = async (status: 'up' | 'down') => {
      await store.writeDecided(new Map([['web/a', status]]));
      await clock.advance(100);
    };
    try {
      await clock.advance(100);
      const good = fleet.view();
      fleet.subscribe((v) => seen.push(v));
      failure = new RangeError('Invalid string length');
      await flip('down');
      await flip('up');
      // The last good view, marked as held back, told once (not again while the failure stays the same).
      expect(fleet.view()).toEqual({ ...good, problems: [expect.stringMatching(/^view not updated since /)] });
      expect(seen).toEqual([fleet.view()]);
      const failed = () => warn.mock.calls.filter((c) => (c[0] as { event?: string }).event === 'viewBuildFailed');
      expect(failed()).toEqual([[{ event: 'viewBuildFailed', err: 'Invalid string length', heldBack: 0 }]]);
      await clock.advance(60_000);
      await flip('down');
      expect(failed()[1]).toEqual([{ event: 'viewBuildFailed', err: 'Invalid string length', heldBack: 1 }]);
      failure = undefined;
      await flip('up');
      expect(seen).toHaveLength(2);
      expect(fleet.view().problems).toEqual([]);
      expect(fleet.view().pools[0]?.members[0]?.decided).toBe('up');
      expect(fleet.view().decidedRevision).toBeGreaterThan(good.decidedRevision);
    } finally {
      await fleet.close();
      await store.close();
    }
  });
});

describe('live fleet - a view held back says so', () => {
  test('a member decided down while the rebuild throws: the view says it is not updated, until a build succeeds', async () => {
    const clock = createManualClock(Date.UTC(2026, 11, 6, 21, 0, 0));
    const store = new MemoryFleetStore();
    await store.apply(
      parseFleet({
        hashSeed: 5,
        pools: [{ name: 'web', members: [{ name: 'a', address: '198.18.0.21', port: 80 }] }],
        vips: [{ address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web', tableSize: 251 }],
      }),
    );
    const cache = createVipTableCache();
    let failure: Error | undefined;
    const vipTables: VipTableCache = {
      forView(...args) {
        if (failure) throw failure;
        return cache.forView(...args);
      },
    };
    const fleet = await watchFleet(store, logger, { clock, vipTables });
    const seen: FleetView[] = [];
    fleet.subscribe((v) => seen.push(v));
    try {
      await store.writeDecided(new Map([['web/a', 'up']]));
      await clock.advance(100);
      expect(fleet.view().pools[0]?.members[0]?.decided).toBe('up');
      expect(fleet.view().problems).toEqual([]);

      failure = new RangeError('Invalid string length');
      await store.writeDecided(new Map([['web/a', 'down']]));
      await clock.advance(100);
      await clock.advance(3_600_000);
      // Still the last good view (web/a up), but it says so: the page and /api/state do not pass it off as current.
      expect(fleet.view().pools[0]?.members[0]?.decided).toBe('up');
      const held = ['view not updated since 2026-12-06T21:00:00.200Z: Invalid string length'];
      expect(fleet.view().problems).toEqual(held);
      expect(seen.at(-1)?.problems).toEqual(held);

      failure = undefined; // the next change builds a view again
      await store.writeDecided(new Map([['web/a', 'up']]));
      await clock.advance(100);
      expect(fleet.view().pools[0]?.members[0]?.decided).toBe('up');
      expect(fleet.view().problems).toEqual([]);
      expect(seen.at(-1)).toBe(fleet.view());
    } finally {
      await fleet.close();
      await store.close();
    }
  });
});

describe('live fleet - a second hold after a recovery', () => {
  test('fails, recovers, fails again with the same message: the view says so again, since the new failure', async () => {
    const clock = createManualClock(Date.UTC(2026, 11, 6, 21, 0, 0));
    const store = await outageStore();
    store.mode = 'up';
    const cache = createVipTableCache();
    let failure: Error | undefined;
    const vipTables: VipTableCache = {
      forView(...args) {
        if (failure) throw failure;
        return cache.forView(...args);
      },
    };
    const fleet = await watchFleet(store, logger, { clock, vipTables });
    const flip = async (status: 'up' | 'down') => {
      await store.writeDecided(new Map([['web/a', status]]));
      await clock.advance(100);
    };
    try {
      failure = new RangeError('Invalid string length');
      await flip('down');
      expect(fleet.view().problems[0]).toBe('view not updated since 2026-12-06T21:00:00.100Z: Invalid string length');
      failure = undefined;
      await flip('up');
      expect(fleet.view().problems).toEqual([]);
      await clock.advance(3_600_000);
      failure = new RangeError('Invalid string length');
      await flip('down');
      // A new hold: not the old line (which would be told as nothing new, leaving the view unmarked).
      expect(fleet.view().pools[0]?.members[0]?.decided).toBe('up');
      expect(fleet.view().problems[0]).toBe('view not updated since 2026-12-06T22:00:00.300Z: Invalid string length');
    } finally {
      await fleet.close();
      await store.close();
    }
  });
});

describe('live fleet - a view listener that throws', () => {
  test('the other listeners are still told, one viewListenerFailed warning, nothing thrown out of the rebuild', async () => {
    const clock = createManualClock();
    const store = await outageStore();
    store.mode = 'up';
    const log = pino({ level: 'silent' });
    const warn = vi.spyOn(log, 'warn');
    const fleet = await watchFleet(store, log, { clock });
    const seen: FleetView[] = [];
    try {
      await clock.advance(100);
      fleet.subscribe(() => {
        throw new Error('page gone');
      });
      fleet.subscribe((v) => seen.push(v));
      await store.writeDecided(new Map([['web/a', 'down']]));
      await clock.advance(100); // the rebuild timer runs here: a throw out of it would reject this
      expect(seen).toHaveLength(1);
      expect(seen[0]?.pools[0]?.members[0]?.decided).toBe('down');
      const failed = warn.mock.calls.filter((c) => (c[0] as { event?: string }).event === 'viewListenerFailed');
      expect(failed).toEqual([[{ event: 'viewListenerFailed', err: 'page gone', heldBack: 0 }]]);
    } finally {
      await fleet.close();
      await store.close();
    }
  });
});
