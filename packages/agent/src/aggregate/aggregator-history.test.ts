import { parseFleet } from '@l4fleet/config';
import { type Leadership, MemoryFleetStore, StoreError, toStoreError } from '@l4fleet/store';
import pino from 'pino';
import { afterEach, describe, expect, test } from 'vitest';
import { createManualClock, type ManualClock } from '../clock.js';
import { type Aggregator, createAggregator } from './aggregator.js';
import { RefusingPoolStore } from './refusing-store.test-helper.js';

const logger = pino({ level: 'silent' });
const T0 = 1_700_000_000_000;
const fleetOf = (n: number, retainS = 30) =>
  parseFleet({
    hashSeed: 3,
    pools: [
      {
        name: 'web',
        forwarding: 'gue',
        healthCheck: { type: 'none' },
        secondChance: { retainS },
        members: Array.from({ length: n }, (_v, i) => ({ address: `198.18.0.${i + 1}`, port: 80 })),
      },
    ],
    vips: [{ address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web', tableSize: 251 }],
  });

/** A store that refuses its next `failures` history writes (etcd unavailable), counting those it took. */
class FlakyHistoryStore extends MemoryFleetStore {
  failures = 0;
  historyWrites = 0;
  override async writeTableHistory(...args: Parameters<MemoryFleetStore['writeTableHistory']>) {
    if (this.failures > 0) {
      this.failures -= 1;
      throw new StoreError('UNAVAILABLE', 'write table history: etcd unavailable');
    }
    this.historyWrites += 1;
    return super.writeTableHistory(...args);
  }
}

const open: Aggregator[] = [];
afterEach(async () => {
  for (const a of open.splice(0)) await a.close();
});

describe('aggregator - table history', () => {
  test('the leader records a change with its time and drops it at retainS on its own timer', async () => {
    const clock = createManualClock(T0);
    const store = new MemoryFleetStore();
    const agg = createAggregator({ node: 'n1', store, logger, clock });
    open.push(agg);
    await store.watchTableHistory({ onUpdate: (s) => agg.setHistory(s.history) });
    agg.start();
    await clock.advance(10);
    expect(agg.isLeader).toBe(true);
    const history = async () => (await store.getTableHistory()).history.get('web');

    agg.setFleet(fleetOf(3));
    await clock.advance(10);
    expect(await history()).toMatchObject({ earlier: [] });
    expect((await history())?.current).toHaveLength(3);

    agg.setFleet(fleetOf(4));
    await clock.advance(10);
    const changedAt = T0 + 20;
    const recorded = await history();
    expect(recorded?.current).toHaveLength(4);
    expect(recorded?.earlier.map((t) => [t.members.length, t.untilMs])).toEqual([[3, changedAt + 5]]);

    await clock.advance(29_000);
    expect((await history())?.earlier).toHaveLength(1);
    await clock.advance(1_100);
    expect((await history())?.earlier).toEqual([]);
  });

  test('a follower writes nothing', async () => {
    const clock = createManualClock(T0);
    const store = new MemoryFleetStore();
    const leader = createAggregator({ node: 'n1', store, logger, clock });
    const follower = createAggregator({ node: 'n2', store, logger, clock });
    open.push(leader, follower);
    leader.start();
    await clock.advance(10);
    follower.start();
    follower.setFleet(fleetOf(3));
    await clock.advance(10);
    expect(follower.isLeader).toBe(false);
    expect((await store.getTableHistory()).history.size).toBe(0);
  });

  test('a rewrite of a refused history record whose write fails is tried again', async () => {
    const clock = createManualClock(T0);
    const store = new FlakyHistoryStore();
    const agg = createAggregator({ node: 'n1', store, logger, clock });
    open.push(agg);
    await store.watchTableHistory({ onUpdate: (s) => agg.setHistory(s.history) });
    agg.start();
    await clock.advance(10);
    agg.setFleet(fleetOf(3));
    await clock.advance(10);
    expect(store.historyWrites).toBe(1);

    // The watch refused the stored record; the rewrite meets etcd unavailable once.
    store.failures = 1;
    agg.historyRejected();
    await clock.advance(10);
    expect(store.historyWrites).toBe(1);
    await clock.advance(1_100);
    expect(store.historyWrites).toBe(2);
  });
});

/** Node's setTimeout limit: a longer delay is taken as 1 ms (TimeoutOverflowWarning). */
const MAX_TIMER_MS = 2 ** 31 - 1;
const DAY_MS = 86_400_000;

/** `clock` with every delay handed to setTimeout recorded. */
function recording(clock: ReturnType<typeof createManualClock>) {
  const delays: number[] = [];
  return {
    delays,
    clock: {
      now: () => clock.now(),
      monoMs: () => clock.monoMs(),
      setTimeout: (fn: () => void, ms: number) => {
        delays.push(ms);
        return clock.setTimeout(fn, ms);
      },
      clearTimeout: (h: unknown) => clock.clearTimeout(h),
    },
  };
}

describe('aggregator - table history stamped ahead of the clock', () => {
  test('an earlier table stamped 30 days ahead (a former leader whose clock ran ahead) expires within retainS of now', async () => {
    const manual = createManualClock(T0);
    const { clock, delays } = recording(manual);
    const store = new MemoryFleetStore();
    const ahead = fleetOf(3).pools[0]!;
    const now4 = fleetOf(4).pools[0]!;
    const row = (m: (typeof ahead.members)[number]) => ({ name: m.name, address: m.address, port: m.port, weight: 1 });
    await store.writeTableHistory(
      new Map([
        [
          'web',
          {
            pool: 'web',
            current: now4.members.map(row),
            earlier: [{ untilMs: T0 + 30 * DAY_MS, members: ahead.members.map(row) }],
          },
        ],
      ]),
    );
    const agg = createAggregator({ node: 'n1', store, logger, clock });
    open.push(agg);
    await store.watchTableHistory({ onUpdate: (s) => agg.setHistory(s.history) });
    agg.start();
    agg.setFleet(fleetOf(4));
    await manual.advance(20);
    expect(agg.isLeader).toBe(true);
    expect(delays.every((ms) => ms <= MAX_TIMER_MS)).toBe(true);
    const untilMs = (await store.getTableHistory()).history.get('web')?.earlier[0]?.untilMs as number;
    // Capped at the leader's now plus the skew it allows (5 min): retention ends within retainS (30 s) + 5 min.
    expect(untilMs).toBeLessThanOrEqual(T0 + 20 + 5 * 60_000);
    await manual.advance(5 * 60_000 + 30_000 + 100);
    expect((await store.getTableHistory()).history.get('web')?.earlier).toEqual([]);
    expect(delays.every((ms) => ms <= MAX_TIMER_MS)).toBe(true);
  });
});

describe("aggregator - table history when the leader's wall clock steps (NTP)", () => {
  // An hour forward (past retainS) would drop the tables at the next step; an hour back kept them an hour (then
  // 5 min, the cap on times ahead) longer. Either way they expire retainS after they were replaced, on steady time.
  test.each([
    ['forward past retainS', 3_601_000],
    ['back two hours', -7_200_000],
  ])('stepped %s: tables it recorded stay, and expire at retainS of steady time', async (_name, stepMs) => {
    const clock = createManualClock(T0);
    const store = new MemoryFleetStore();
    const agg = createAggregator({ node: 'n1', store, logger, clock });
    open.push(agg);
    await store.watchTableHistory({ onUpdate: (s) => agg.setHistory(s.history) });
    agg.start();
    await clock.advance(10);
    const earlier = async () =>
      (await store.getTableHistory()).history.get('web')?.earlier.map((t) => t.members.length);
    agg.setFleet(fleetOf(3, 3_600));
    await clock.advance(10);
    agg.setFleet(fleetOf(4, 3_600));
    await clock.advance(10); // the table of 3 replaced at steady 25 ms
    expect(await earlier()).toEqual([3]);
    clock.stepWall(stepMs);
    agg.setFleet(fleetOf(5, 3_600));
    await clock.advance(3_000); // the table of 4 replaced at steady 35 ms
    expect(await earlier()).toEqual([4, 3]);
    await clock.advance(3_600_000 - 3_030 - 100);
    expect(await earlier()).toEqual([4, 3]);
    await clock.advance(200);
    expect(await earlier()).toEqual([]);
  });
});

describe('aggregator - the wall clock steps while the history write is in etcd', () => {
  test('the step is applied: the table that write replaced stays, and expires at retainS of steady time', async () => {
    // The history's times were read before the write, the wall clock's offset after it: a step in between was never
    // applied, and the next recompute judged the table replaced in that write an hour old and dropped it.
    class SteppingStore extends MemoryFleetStore {
      stepInNextWrite = false;
      constructor(private readonly clock: ManualClock) {
        super();
      }
      override async writeTableHistory(...args: Parameters<MemoryFleetStore['writeTableHistory']>) {
        await super.writeTableHistory(...args);
        if (this.stepInNextWrite) {
          this.stepInNextWrite = false;
          this.clock.stepWall(3_601_000); // NTP, past retainS, while the write was still on its way back
        }
      }
    }
    const clock = createManualClock(T0);
    const store = new SteppingStore(clock);
    const agg = createAggregator({ node: 'n1', store, logger, clock });
    open.push(agg);
    await store.watchTableHistory({ onUpdate: (s) => agg.setHistory(s.history) });
    agg.start();
    await clock.advance(10);
    const earlier = async () =>
      (await store.getTableHistory()).history.get('web')?.earlier.map((t) => t.members.length);
    agg.setFleet(fleetOf(3, 3_600));
    await clock.advance(10);
    store.stepInNextWrite = true;
    agg.setFleet(fleetOf(4, 3_600));
    await clock.advance(10); // the table of 3 replaced at steady 25 ms, the step inside that write
    expect(store.stepInNextWrite).toBe(false);
    expect(await earlier()).toEqual([3]);
    agg.setFleet(fleetOf(5, 3_600));
    await clock.advance(3_000); // the table of 4 replaced at steady 35 ms
    expect(await earlier()).toEqual([4, 3]);
    await clock.advance(3_600_000 - 3_030 - 100);
    expect(await earlier()).toEqual([4, 3]);
    await clock.advance(200);
    expect(await earlier()).toEqual([]);
  });
});

describe('aggregator - a refused history write', () => {
  test('is logged as tableHistoryWriteFailed with the store code, not as a failed decision write', async () => {
    const lines: { event?: string; code?: string }[] = [];
    const logged = pino({ level: 'warn' }, { write: (l: string) => lines.push(JSON.parse(l)) });
    const clock = createManualClock(T0);
    const store = new FlakyHistoryStore();
    store.failures = 1;
    const agg = createAggregator({ node: 'n1', store, logger: logged, clock });
    open.push(agg);
    agg.start();
    await clock.advance(10);
    agg.setFleet(fleetOf(3));
    await clock.advance(10);
    const events = lines.map((l) => l.event);
    expect(events).toContain('tableHistoryWriteFailed');
    expect(events).not.toContain('decisionWriteFailed');
    expect(lines.find((l) => l.event === 'tableHistoryWriteFailed')?.code).toBe('UNAVAILABLE');
    await clock.advance(1_100);
    expect(store.historyWrites).toBe(1);
  });
});

describe('aggregator - a decided record etcd refuses as too large', () => {
  /** fleetOf(n) plus pool `big`, whose decided record the store refuses (RefusingPoolStore). */
  const withBig = (n: number) => {
    const f = fleetOf(n);
    const big = parseFleet({
      hashSeed: 3,
      pools: [{ name: 'big', healthCheck: { type: 'tcp' }, members: [{ name: 'x', address: '198.18.1.1', port: 80 }] }],
      vips: [{ address: '198.51.100.11', port: 80, protocol: 'tcp', pool: 'big' }],
    });
    return { ...f, pools: [...f.pools, ...big.pools], vips: [...f.vips, ...big.vips] };
  };

  test('the history of the other pools is still recorded; the refusal is logged once and retried with a back-off', async () => {
    const lines: { event?: string }[] = [];
    const logged = pino({ level: 'warn' }, { write: (l: string) => lines.push(JSON.parse(l)) });
    const clock = createManualClock(T0);
    const store = new RefusingPoolStore('big');
    const agg = createAggregator({ node: 'n1', store, logger: logged, clock });
    open.push(agg);
    await store.watchDecided({ onUpdate: (d) => agg.setDecided(d.decided, d.ramps) });
    await store.watchTableHistory({ onUpdate: (s) => agg.setHistory(s.history) });
    for (const n of ['n1', 'n2', 'n3']) {
      const reg = await store.registerNode({ name: n, address: '198.18.0.9' });
      await reg.reportHealth(new Map([['big/x', 'up']]));
    }
    agg.setMembers(['big/x']);
    agg.setLiveNodes(new Set(['n1', 'n2', 'n3']));
    agg.setFleet(withBig(3));
    agg.start();
    await clock.advance(20);
    expect(agg.isLeader).toBe(true);
    expect((await store.getTableHistory()).history.get('web')?.current).toHaveLength(3);
    agg.setFleet(withBig(4));
    await clock.advance(20);
    expect((await store.getTableHistory()).history.get('web')?.current).toHaveLength(4);
    const before = store.writes;
    await clock.advance(60_000);
    // Not once a second: after 1, 2, 4, 8, 16 and 32 s at most (the record cannot shrink by itself).
    expect(store.writes - before).toBeLessThanOrEqual(6);
    expect(lines.filter((l) => l.event === 'decisionWriteRefused')).toHaveLength(1);
    expect(lines.map((l) => l.event)).not.toContain('decisionWriteFailed');
    // The earlier table still expires at retainS (30 s) on the leader's timer.
    expect((await store.getTableHistory()).history.get('web')?.earlier).toEqual([]);
    // etcd takes the record again (the pool shrank, or its limit was raised): a retry writes it, and ends.
    store.refusedPool = 'none';
    await clock.advance(60_000);
    expect((await store.getDecided()).decided.get('big/x')).toBe('up');
    const after = store.writes;
    await clock.advance(120_000);
    expect(store.writes).toBe(after);
  });
});

describe('aggregator - etcd full (NOSPACE alarm)', () => {
  /** Fails its decided writes as the etcd store does while etcd's NOSPACE alarm is raised, until `full` is false. */
  class FullStore extends MemoryFleetStore {
    full = true;
    decidedWrites = 0;
    override async writeDecided(...args: Parameters<MemoryFleetStore['writeDecided']>) {
      this.decidedWrites += 1;
      if (this.full) {
        const grpc = Object.assign(new Error('8 RESOURCE_EXHAUSTED: etcdserver: mvcc: database space exceeded'), {
          code: 8,
        });
        throw toStoreError(grpc, 'write decided status');
      }
      return super.writeDecided(...args);
    }
  }

  test('a decided write refused for lack of space is a failure: not counted written, retried each second, lands once space is freed', async () => {
    const lines: { event?: string; err?: string }[] = [];
    const logged = pino({ level: 'warn' }, { write: (l: string) => lines.push(JSON.parse(l)) });
    const clock = createManualClock(T0);
    const store = new FullStore();
    const counted: number[] = [];
    const agg = createAggregator({
      node: 'n1',
      store,
      logger: logged,
      clock,
      onDecisionsWritten: (n) => counted.push(n),
    });
    open.push(agg);
    await store.watchDecided({ onUpdate: (d) => agg.setDecided(d.decided, d.ramps) });
    for (const n of ['n1', 'n2', 'n3']) {
      const reg = await store.registerNode({ name: n, address: '198.18.0.9' });
      await reg.reportHealth(new Map([['web/198.18.0.1:80', 'up']]));
    }
    agg.setMembers(['web/198.18.0.1:80']);
    agg.setLiveNodes(new Set(['n1', 'n2', 'n3']));
    agg.setFleet(fleetOf(1));
    agg.start();
    await clock.advance(20);
    expect(agg.isLeader).toBe(true);
    await clock.advance(5_000);
    expect(counted).toEqual([]);
    expect(lines.map((l) => l.event)).not.toContain('decisionWriteRefused');
    const failed = lines.filter((l) => l.event === 'decisionWriteFailed');
    expect(failed.length).toBeGreaterThan(0);
    expect(failed[0]?.err).toMatch(/NOSPACE alarm\): compact, defrag and disarm/);
    // Retried as a failure (every RETRY_MS), not backed off as a refusal.
    expect(store.decidedWrites).toBeGreaterThanOrEqual(5);
    store.full = false;
    await clock.advance(1_100);
    expect((await store.getDecided()).decided.get('web/198.18.0.1:80')).toBe('up');
    expect(counted).toEqual([1]);
  });
});

/** History writes land at once, their answers held while `hold()`ed (etcd slow to answer); leaderships kept. */
class HeldHistoryStore extends MemoryFleetStore {
  readonly leaderships: Leadership[] = [];
  private gate: Promise<void> | undefined;
  private open: (() => void) | undefined;
  hold(): void {
    this.gate = new Promise((resolve) => {
      this.open = resolve;
    });
  }
  release(): void {
    this.open?.();
    this.gate = undefined;
  }
  override async campaign(...args: Parameters<MemoryFleetStore['campaign']>) {
    const l = await super.campaign(...args);
    this.leaderships.push(l);
    return l;
  }
  override async writeTableHistory(...args: Parameters<MemoryFleetStore['writeTableHistory']>) {
    await super.writeTableHistory(...args);
    await this.gate;
  }
}

describe('aggregator - leadership lost and regained during a history write', () => {
  // Term 1's loop going on after the write's answer as if it still led would log the write in term 2's time and hand
  // term 2 its written history, ramp steps, held stamps and expiry timer.
  test("term 1's history write answered after term 2 began is not logged as term 2's", async () => {
    const clock = createManualClock(T0);
    const store = new HeldHistoryStore();
    const lines: { event?: string }[] = [];
    const recorded = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
    const agg = createAggregator({ node: 'n1', store, logger: recorded, clock });
    open.push(agg);
    // As the agent does: the history etcd holds comes back by the watch.
    const watch = await store.watchTableHistory({ onUpdate: (s) => agg.setHistory(s.history) });
    try {
      agg.start();
      await clock.advance(10);
      agg.setFleet(fleetOf(3));
      await clock.advance(10);
      const history = async () => (await store.getTableHistory()).history.get('web');
      expect((await history())?.current).toHaveLength(3);
      store.hold();
      agg.setFleet(fleetOf(4));
      await clock.advance(10);
      expect((await history())?.current).toHaveLength(4); // term 1's write landed; its answer is held
      await store.leaderships[0]?.resign();
      await clock.advance(1_150);
      expect(store.leaderships).toHaveLength(2);
      expect(agg.isLeader).toBe(true);
      const before = lines.length;
      store.release();
      for (let i = 0; i < 5; i++) await clock.advance(1_000);
      expect((await history())?.current).toHaveLength(4);
      // Term 2 found the history etcd holds current: nothing of its own to write, and term 1's write is not its.
      const written = lines
        .slice(before)
        .filter((l) => l.event === 'tableHistoryWritten' || l.event === 'tableHistoryRewritten');
      expect(written).toEqual([]);
    } finally {
      await watch.close();
    }
  });
});
