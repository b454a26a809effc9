import { type DecidedStatus, type Fleet, type MemberStatus, parseFleet, startedMembers } from '@l4fleet/config';
import { type DecidedState, MemoryFleetStore } from '@l4fleet/store';
import pino from 'pino';
import { afterEach, describe, expect, test } from 'vitest';
import { createManualClock, type ManualClock } from '../clock.js';
import { type Aggregator, createAggregator } from './aggregator.js';
import { RefusingPoolStore } from './refusing-store.test-helper.js';
import { nextRamps } from './slow-start.js';

const logger = pino({ level: 'silent' });
const T0 = 1_700_000_000_000;
const NODES = ['n1', 'n2', 'n3'];

const fleetOf = (opts: { slowStartS?: number; b?: string; type?: string; c?: boolean } = {}): Fleet =>
  parseFleet({
    hashSeed: 7,
    pools: [
      {
        name: 'web',
        healthCheck: { type: opts.type ?? 'tcp' },
        ...(opts.slowStartS === undefined ? {} : { slowStartS: opts.slowStartS }),
        members: [
          { name: 'a', address: '198.18.0.1', port: 80 },
          { name: 'b', address: '198.18.0.2', port: 80, state: opts.b ?? 'active' },
          ...(opts.c ? [{ name: 'c', address: '198.18.0.3', port: 80 }] : []),
        ],
      },
    ],
    vips: [{ address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web' }],
  });

const status = (entries: [string, MemberStatus][]): DecidedStatus => new Map(entries);

describe('slow start - the aggregator step', () => {
  const step = (o: Partial<Parameters<typeof nextRamps>[0]>) =>
    nextRamps({
      fleet: fleetOf({ slowStartS: 8 }),
      before: new Map(),
      after: new Map(),
      ramps: new Map(),
      started: new Set(),
      nowMs: T0,
      ...o,
    });

  test('up after down begins a ramp at the first step; it steps on the clock and ends at slowStartS', () => {
    const first = step({ before: status([['web/a', 'down']]), after: status([['web/a', 'up']]) });
    expect(first).toMatchObject({ changed: true, begun: ['web/a'], nextStepMs: T0 + 2_000 });
    expect(first.ramps).toEqual(new Map([['web/a', { percent: 20, sinceMs: T0 }]]));
    const up = status([['web/a', 'up']]);
    const later = (ms: number) => step({ before: up, after: up, ramps: first.ramps, nowMs: T0 + ms });
    expect(later(1_999)).toMatchObject({ changed: false, nextStepMs: T0 + 2_000 });
    expect(later(2_000).ramps.get('web/a')).toEqual({ percent: 40, sinceMs: T0 });
    expect(later(6_500).ramps.get('web/a')?.percent).toBe(80);
    expect(later(8_000)).toMatchObject({ changed: true, ramps: new Map() });
    expect(later(8_000).nextStepMs).toBeUndefined();
  });

  test('no ramp: a first decision, slow start off, a draining member; a ramp ends when down or turned off', () => {
    expect(step({ after: status([['web/a', 'up']]) }).ramps.size).toBe(0); // undecided counted as up already
    expect(
      step({ fleet: fleetOf(), before: status([['web/a', 'down']]), after: status([['web/a', 'up']]) }).ramps.size,
    ).toBe(0);
    const ramps = new Map([['web/b', { percent: 40, sinceMs: T0 - 2_000 }]]);
    expect(step({ ramps, after: status([['web/b', 'down']]) })).toMatchObject({ changed: true, ramps: new Map() });
    expect(step({ ramps, fleet: fleetOf() }).ramps.size).toBe(0);
    expect(step({ ramps, fleet: fleetOf({ slowStartS: 8, b: 'draining' }) }).ramps.size).toBe(0);
    expect(step({ ramps, fleet: fleetOf({ slowStartS: 8 }) }).ramps).toEqual(ramps);
    // A member of a pool that is gone, in a record: dropped.
    expect(step({ ramps: new Map([['gone/x', { percent: 20, sinceMs: T0 }]]) })).toMatchObject({ changed: true });
  });

  test('a ramp stamped ahead of the clock (a former leader whose clock ran ahead) is capped at now + 5 min', () => {
    const ahead = new Map([['web/b', { percent: 20, sinceMs: T0 + 30 * 86_400_000 }]]);
    const r = step({ ramps: ahead });
    expect(r.changed).toBe(true);
    expect(r.capped).toEqual(['web/b']);
    expect(r.ramps.get('web/b')).toEqual({ percent: 20, sinceMs: T0 + 5 * 60_000 });
    // Its first step ends 5 min + a quarter of slowStartS from now, not in 30 days.
    expect(r.nextStepMs).toBe(T0 + 5 * 60_000 + 2_000);
    // Within the allowance: kept as it is.
    const near = new Map([['web/b', { percent: 20, sinceMs: T0 + 60_000 }]]);
    expect(step({ ramps: near })).toMatchObject({ changed: false, capped: [] });
  });

  test('a leader whose clock is behind the ramp keeps its stored step: the ramp is re-based, never stepped back', () => {
    // The former leader's clock ran 30 s ahead: the ramp began 6 s ago on it (80 %), 24 s ahead of this leader's now.
    const behind = new Map([['web/b', { percent: 80, sinceMs: T0 + 24_000 }]]);
    const r = step({ ramps: behind });
    expect(r.changed).toBe(true);
    expect(r.ramps.get('web/b')).toEqual({ percent: 80, sinceMs: T0 - 6_000 });
    expect(r.nextStepMs).toBe(T0 + 2_000); // its last step lasts a whole step from now, then the whole weight
    const again = step({ ramps: r.ramps, nowMs: T0 + 1_000 });
    expect(again.changed).toBe(false);
    expect(step({ ramps: r.ramps, nowMs: T0 + 2_000 }).ramps.size).toBe(0);
    // Past the 5 min bound too: the stored step, not the first one for 5 min and then the ramp again.
    const farAhead = step({ ramps: new Map([['web/b', { percent: 60, sinceMs: T0 + 30 * 86_400_000 }]]) });
    expect(farAhead.ramps.get('web/b')).toEqual({ percent: 60, sinceMs: T0 - 4_000 });
    expect(farAhead.capped).toEqual(['web/b']);
    expect(farAhead.nextStepMs).toBe(T0 + 2_000);
    // A step of another writer between this one's steps (50 %): the next step up, never a lower one.
    expect(step({ ramps: new Map([['web/b', { percent: 50, sinceMs: T0 }]]) }).ramps.get('web/b')).toEqual({
      percent: 60,
      sinceMs: T0 - 4_000,
    });
    // Above the last step (90 %): the whole weight, not 20 %.
    expect(step({ ramps: new Map([['web/b', { percent: 90, sinceMs: T0 }]]) }).ramps.size).toBe(0);
  });

  test("a ramp this leader holds moves with its wall clock's steps; one it takes over moves one step up at most", () => {
    const up = status([['web/b', 'up']]);
    const at20 = new Map([['web/b', { percent: 20, sinceMs: T0 - 1_000 }]]);
    // Its own, the wall clock stepped 10 min forward since: the same step, in the new wall time (a write).
    const own = step({ before: up, after: up, ramps: at20, nowMs: T0 + 600_000, held: () => 600_000 });
    expect(own).toMatchObject({ changed: true, limited: [], nextStepMs: T0 + 600_000 + 1_000 });
    expect(own.ramps.get('web/b')).toEqual({ percent: 20, sinceMs: T0 + 599_000 });
    // Taken over by a leader 10 min ahead: the next step, begun now, not the whole weight.
    const taken = step({ before: up, after: up, ramps: at20, nowMs: T0 + 600_000, held: () => undefined });
    expect(taken).toMatchObject({ changed: true, limited: ['web/b'], nextStepMs: T0 + 600_000 + 2_000 });
    expect(taken.ramps.get('web/b')).toEqual({ percent: 40, sinceMs: T0 + 600_000 - 2_000 });
    // One step up is taken, begun now too (a clock ahead by up to a step more gives no sooner a next one); from the
    // last step, the whole weight.
    const near = step({ before: up, after: up, ramps: at20, nowMs: T0 + 1_500, held: () => undefined });
    expect(near).toMatchObject({ limited: [], ramps: new Map([['web/b', { percent: 40, sinceMs: T0 - 500 }]]) });
    const at80 = new Map([['web/b', { percent: 80, sinceMs: T0 - 7_000 }]]);
    expect(step({ before: up, after: up, ramps: at80, nowMs: T0 + 600_000, held: () => undefined }).ramps.size).toBe(0);
  });

  test('a ramp taken over at exactly the next step by the new clock: that step is begun now, not the old time', () => {
    // The stored 20 % began at T0; a new leader's clock puts T0 + 3,900 ms in the second step. Kept at T0, the third
    // step came 100 ms later: a clock 1 to 2 steps ahead moved the ramp two steps in seconds.
    const up = status([['web/b', 'up']]);
    const at20 = new Map([['web/b', { percent: 20, sinceMs: T0 }]]);
    const taken = step({ before: up, after: up, ramps: at20, nowMs: T0 + 3_900, held: () => undefined });
    expect(taken.ramps.get('web/b')).toEqual({ percent: 40, sinceMs: T0 + 3_900 - 2_000 });
    expect((taken.nextStepMs as number) - (T0 + 3_900)).toBe(2_000);
    // Its own ramp (no takeover) steps on its time as before.
    const own = step({ before: up, after: up, ramps: at20, nowMs: T0 + 3_900 });
    expect(own.ramps.get('web/b')).toEqual({ percent: 40, sinceMs: T0 });
  });

  test('a member started by the fleet ramps too, also with health check none (no decisions)', () => {
    const r = step({ fleet: fleetOf({ slowStartS: 8, type: 'none' }), started: new Set(['web/b']) });
    expect(r.ramps).toEqual(new Map([['web/b', { percent: 20, sinceMs: T0 }]]));
  });

  test('startedMembers: set active or added to a pool that was there; not a new pool, not with slow start off', () => {
    const before = fleetOf({ slowStartS: 8, b: 'draining' });
    expect(startedMembers(before, fleetOf({ slowStartS: 8, c: true }))).toEqual(new Set(['web/b', 'web/c']));
    expect(startedMembers(fleetOf({ slowStartS: 8, b: 'disabled' }), fleetOf({ slowStartS: 8 }))).toEqual(
      new Set(['web/b']),
    );
    expect(startedMembers(before, fleetOf({ b: 'active' })).size).toBe(0);
    expect(startedMembers({ pools: [], vips: [] }, fleetOf({ slowStartS: 8 })).size).toBe(0);
    expect(startedMembers(fleetOf({ slowStartS: 8 }), fleetOf({ slowStartS: 8, b: 'draining' })).size).toBe(0);
  });

  test('a big pool coming back at once: every member ramps, and each member is read a bounded number of times', () => {
    // A lookup of the member by name per member considered (pool.members.find) made a pass quadratic in the pool:
    // 20,000 members took 1.5 s of the agent's event loop (health probes, etcd keep-alives) at every recompute.
    const N = 20_000;
    const names = Array.from({ length: N }, (_, i) => `m${i}`);
    const parsed = parseFleet({
      hashSeed: 7,
      pools: [
        {
          name: 'big',
          healthCheck: { type: 'tcp' },
          slowStartS: 8,
          members: names.map((name, i) => ({
            name,
            address: '198.18.0.1',
            port: 1_000 + i,
            ...(i === 7 ? { state: 'draining' } : {}),
          })),
        },
      ],
      vips: [{ address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'big' }],
    });
    // Every read of a member out of the pool's list is counted (find, filter, for-of and indexing alike); far past
    // a linear count the pass is stopped, so a quadratic one fails at once instead of running for seconds.
    let reads = 0;
    const budget = 20 * N;
    const members = new Proxy(parsed.pools[0]?.members ?? [], {
      get(target, prop, receiver) {
        if (typeof prop === 'string' && /^\d+$/.test(prop) && ++reads > budget) {
          throw new Error(`more than ${budget} reads of the pool's ${N} members in one pass`);
        }
        return Reflect.get(target, prop, receiver);
      },
    });
    const fleet: Fleet = { ...parsed, pools: parsed.pools.map((p) => ({ ...p, members })) };
    const keys = names.map((n) => `big/${n}`);
    const all = (s: MemberStatus) => new Map(keys.map((k): [string, MemberStatus] => [k, s]));
    const base = { fleet, ramps: new Map(), started: new Set<string>(), nowMs: T0 };

    const back = nextRamps({ ...base, before: all('down'), after: all('up') });
    expect(reads).toBeLessThanOrEqual(3 * N);
    expect(back.ramps.size).toBe(N - 1); // all but the draining one
    expect(back.begun).toHaveLength(N - 1);
    expect(back.ramps.has('big/m7')).toBe(false);
    for (const r of back.ramps.values()) expect(r).toEqual({ percent: 20, sinceMs: T0 });

    // The next pass steps every stored ramp (each looked up in its pool); one member decided down again loses its.
    reads = 0;
    const after = all('up');
    after.set('big/m3', 'down');
    const next = nextRamps({ ...base, before: all('up'), after, ramps: back.ramps, nowMs: T0 + 2_000 });
    expect(reads).toBeLessThanOrEqual(3 * N);
    expect(next.ramps.size).toBe(N - 2);
    expect(next.ramps.has('big/m3')).toBe(false);
    expect(next.ramps.get('big/m19999')).toEqual({ percent: 40, sinceMs: T0 });
    expect(next.begun).toEqual([]);
  });
});

describe('slow start - through the aggregator and a store', () => {
  const open: Aggregator[] = [];
  afterEach(async () => {
    for (const a of open.splice(0)) await a.close();
  });

  /** n1 leads over a memory store (or `storeOf`'s); the decided watch feeds it back, as the agent does. */
  async function leader<S extends MemoryFleetStore = MemoryFleetStore>(
    fleet: Fleet,
    storeOf: (clock: ManualClock) => S = () => new MemoryFleetStore() as S,
  ) {
    const clock = createManualClock(T0);
    const store = storeOf(clock);
    const agg = createAggregator({ node: 'n1', store, logger, clock });
    open.push(agg);
    const seen: DecidedState[] = [];
    await store.watchDecided({
      onUpdate: (d) => {
        seen.push(d);
        agg.setDecided(d.decided, d.ramps);
      },
    });
    const regs = await Promise.all(NODES.map((n) => store.registerNode({ name: n, address: '198.18.0.9' })));
    const report = async (s: MemberStatus) => {
      for (const r of regs) await r.reportHealth(new Map([['web/a', s]]));
    };
    await report('up');
    agg.setMembers(['web/a', 'web/b']);
    agg.setLiveNodes(new Set(NODES));
    agg.setFleet(fleet);
    agg.start();
    await clock.advance(20);
    expect(agg.isLeader).toBe(true);
    return { clock, store, agg, report, seen };
  }

  test('a returning member is decided up with its first step in one write, then steps to its whole weight', async () => {
    const { clock, store, report, seen } = await leader(fleetOf({ slowStartS: 8 }));
    expect((await store.getDecided()).ramps.size).toBe(0); // the first decision ramps nothing
    await report('down');
    await clock.advance(20);
    expect((await store.getDecided()).decided.get('web/a')).toBe('down');
    await clock.advance(5_000);
    await report('up');
    await clock.advance(20);
    // Every record a node could have read with a up also has its ramp: never the whole weight first.
    const afterDown = seen.slice(seen.findIndex((d) => d.decided.get('web/a') === 'down'));
    const upRecords = afterDown.filter((d) => d.decided.get('web/a') === 'up');
    expect(upRecords.length).toBeGreaterThan(0);
    expect(upRecords.every((d) => d.ramps.get('web/a')?.percent === 20)).toBe(true);
    const began = (await store.getDecided()).ramps.get('web/a')?.sinceMs as number;
    expect(began).toBeGreaterThan(clock.now() - 20);
    const percentAt = async (ms: number) => {
      await clock.advance(ms);
      return (await store.getDecided()).ramps.get('web/a')?.percent;
    };
    expect(await percentAt(began + 2_010 - clock.now())).toBe(40); // the step timer, then RECOMPUTE_DELAY_MS
    expect(await percentAt(2_000)).toBe(60);
    expect(await percentAt(2_000)).toBe(80);
    expect(await percentAt(2_000)).toBeUndefined();
    expect((await store.getDecided()).decided.get('web/a')).toBe('up');
  });

  test("the leader's wall clock stepped back an hour mid-ramp: the step stays, the ramp goes on up and ends", async () => {
    const { clock, store, report, seen } = await leader(fleetOf({ slowStartS: 8 }));
    await report('down');
    await clock.advance(5_000);
    await report('up');
    await clock.advance(2_100);
    expect((await store.getDecided()).ramps.get('web/a')?.percent).toBe(40);
    clock.stepWall(-3_600_000); // NTP: steady time and the timers go on
    for (let i = 0; i < 100 && (await store.getDecided()).ramps.has('web/a'); i++) await clock.advance(500);
    const percents = seen
      .slice(seen.findIndex((d) => d.ramps.has('web/a')))
      .map((d) => d.ramps.get('web/a')?.percent ?? 100);
    // Never lower than before: no table moves back and forth, and the member is not held at 20 % for an hour.
    expect(percents.every((p, i) => i === 0 || p >= (percents[i - 1] as number))).toBe(true);
    expect(percents.at(-1)).toBe(100);
    expect(new Set(percents)).toEqual(new Set([20, 40, 60, 80, 100]));
  });

  test("the leader's wall clock stepped forward 10 min mid-ramp: the step stays, the ramp goes on by steady time", async () => {
    const { clock, store, agg, report } = await leader(fleetOf({ slowStartS: 600 }));
    const ramp = async () => (await store.getDecided()).ramps.get('web/a');
    await report('down');
    await clock.advance(5_000);
    await report('up');
    await clock.advance(100);
    const began = await ramp();
    expect(began?.percent).toBe(20);
    clock.stepWall(10 * 60_000); // NTP: steady time and the timers go on
    agg.setLiveNodes(new Set(NODES)); // anything that makes the leader decide again
    await clock.advance(3_000);
    // Not the whole weight at once: the ramp's time moved with the wall clock, in the record too (in its new time).
    expect(await ramp()).toEqual({ percent: 20, sinceMs: (began?.sinceMs as number) + 10 * 60_000 });
    await clock.advance(150_000 - 3_100 - 100); // each step a quarter of 600 s of steady time from the return
    expect((await ramp())?.percent).toBe(20);
    await clock.advance(200);
    expect((await ramp())?.percent).toBe(40);
  });

  test('the wall clock stepped forward 10 min while the write that began the ramp was in etcd: the step stays', async () => {
    // The ramp's time was read before the write, the wall clock's offset after it: the step in between was never
    // applied, and the ramp, 10 min old on the new wall clock, ended 3 s after it began.
    class SteppingStore extends MemoryFleetStore {
      stepInNextRamp = false;
      constructor(private readonly clock: ManualClock) {
        super();
      }
      override async writeDecided(...args: Parameters<MemoryFleetStore['writeDecided']>) {
        await super.writeDecided(...args);
        if (this.stepInNextRamp && args[1]?.ramps?.has('web/a')) {
          this.stepInNextRamp = false;
          this.clock.stepWall(10 * 60_000); // NTP, while the write was still on its way back
        }
      }
    }
    const { clock, store, agg, report } = await leader(fleetOf({ slowStartS: 600 }), (c) => new SteppingStore(c));
    const ramp = async () => (await store.getDecided()).ramps.get('web/a');
    await report('down');
    await clock.advance(5_000);
    store.stepInNextRamp = true;
    await report('up');
    await clock.advance(100);
    const began = await ramp();
    expect(began?.percent).toBe(20);
    expect(store.stepInNextRamp).toBe(false); // stepped inside that write
    // Moved with the step, in the record too (the echo of the write made the leader decide again): in the new time.
    expect(began?.sinceMs).toBeGreaterThan(T0 + 10 * 60_000);
    agg.setLiveNodes(new Set(NODES)); // anything that makes the leader decide again
    await clock.advance(3_000);
    expect(await ramp()).toEqual(began);
    await clock.advance(150_000 - 3_100 - 100);
    expect((await ramp())?.percent).toBe(20);
    await clock.advance(200);
    expect((await ramp())?.percent).toBe(40);
  });

  // 280 s is between one and two steps (150 s each): the new clock gives exactly the next step, which must be begun
  // now too (kept at the old time, the step after came 20 s later).
  test.each([
    ['10 min', 10 * 60_000],
    ['280 s', 280_000],
  ])(
    'a new leader whose clock is %s ahead moves a ramp one step up at most, then on by steady time',
    async (_n, aheadMs) => {
      const { clock, store, agg } = await leader(fleetOf({ slowStartS: 600, b: 'draining' }));
      agg.setFleet(fleetOf({ slowStartS: 600 }));
      await clock.advance(20);
      expect((await store.getDecided()).ramps.get('web/b')?.percent).toBe(20);
      await agg.close();
      const ahead = createManualClock(clock.now() + aheadMs);
      const next = createAggregator({ node: 'n2', store, logger, clock: ahead });
      open.push(next);
      await store.watchDecided({ onUpdate: (d) => next.setDecided(d.decided, d.ramps) });
      next.setMembers(['web/a', 'web/b']);
      next.setLiveNodes(new Set(NODES));
      next.setFleet(fleetOf({ slowStartS: 600 }));
      next.start();
      await ahead.advance(20);
      expect(next.isLeader).toBe(true);
      // Its clock says the ramp is over: it takes the next step, begun now, not the whole weight at once.
      const took = (await store.getDecided()).ramps.get('web/b');
      expect(took?.percent).toBe(40);
      await ahead.advance(150_000 - 100);
      expect((await store.getDecided()).ramps.get('web/b')?.percent).toBe(40);
      await ahead.advance(200);
      expect((await store.getDecided()).ramps.get('web/b')?.percent).toBe(60);
    },
  );

  test('a ramp stamped 30 days ahead in etcd: the leader arms no timer beyond 2^31-1 ms and the ramp ends', async () => {
    const manual = createManualClock(T0);
    const delays: number[] = [];
    const clock = {
      now: () => manual.now(),
      monoMs: () => manual.monoMs(),
      setTimeout: (fn: () => void, ms: number) => {
        delays.push(ms);
        return manual.setTimeout(fn, ms);
      },
      clearTimeout: (h: unknown) => manual.clearTimeout(h),
    };
    const store = new MemoryFleetStore();
    await store.writeDecided(new Map([['web/b', 'up']]), {
      ramps: new Map([['web/b', { percent: 20, sinceMs: T0 + 30 * 86_400_000 }]]),
      pools: ['web'],
    });
    const agg = createAggregator({ node: 'n1', store, logger, clock });
    open.push(agg);
    await store.watchDecided({ onUpdate: (d) => agg.setDecided(d.decided, d.ramps) });
    agg.setMembers(['web/a', 'web/b']);
    agg.setLiveNodes(new Set(NODES));
    agg.setFleet(fleetOf({ slowStartS: 8, type: 'none' }));
    agg.start();
    await manual.advance(20);
    expect(agg.isLeader).toBe(true);
    expect(Math.max(...delays)).toBeLessThanOrEqual(2 ** 31 - 1);
    expect((await store.getDecided()).ramps.get('web/b')?.sinceMs).toBeLessThanOrEqual(T0 + 20 + 5 * 60_000);
    await manual.advance(5 * 60_000 + 8_100);
    expect((await store.getDecided()).ramps.size).toBe(0);
    expect(Math.max(...delays)).toBeLessThanOrEqual(2 ** 31 - 1);
  });

  // A new leader took over a 20,000-member pool's ramps and warned once per member: 20,000 lines in one pass.
  test('ramps taken over in bulk (50 limited in one pool, 50 capped in another): one warning per event and pool, naming 5', async () => {
    const N = 50;
    const names = Array.from({ length: N }, (_, i) => `m${i}`);
    const pool = (name: string, octet: number) => ({
      name,
      healthCheck: { type: 'none' },
      slowStartS: 600,
      members: names.map((m, i) => ({ name: m, address: `198.18.${octet}.${i + 1}`, port: 80 })),
    });
    const fleet = parseFleet({
      hashSeed: 7,
      pools: [pool('web', 1), pool('api', 2)],
      vips: [
        { address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web' },
        { address: '198.51.100.20', port: 80, protocol: 'tcp', pool: 'api' },
      ],
    });
    const keys = (p: string) => names.map((m) => `${p}/${m}`);
    const store = new MemoryFleetStore();
    // web's ramps began 10 min before this leader's clock (more than one step: limited); api's 1 h after it (capped).
    await store.writeDecided(new Map([...keys('web'), ...keys('api')].map((k) => [k, 'up'])), {
      ramps: new Map([
        ...keys('web').map((k) => [k, { percent: 20, sinceMs: T0 - 10 * 60_000 }] as const),
        ...keys('api').map((k) => [k, { percent: 20, sinceMs: T0 + 3_600_000 }] as const),
      ]),
      pools: ['web', 'api'],
    });
    const clock = createManualClock(T0);
    const lines: { level: number; event?: string; [k: string]: unknown }[] = [];
    const logged = pino({ level: 'debug' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
    const agg = createAggregator({ node: 'n1', store, logger: logged, clock });
    open.push(agg);
    await store.watchDecided({ onUpdate: (d) => agg.setDecided(d.decided, d.ramps) });
    agg.setMembers([...keys('web'), ...keys('api')]);
    agg.setLiveNodes(new Set(NODES));
    agg.setFleet(fleet);
    agg.start();
    await clock.advance(20);
    expect(agg.isLeader).toBe(true);
    expect((await store.getDecided()).ramps.get('web/m0')?.percent).toBe(40);
    const limited = lines.filter((l) => l.event === 'rampTakeoverLimited');
    const capped = lines.filter((l) => l.event === 'rampTimeCapped');
    expect(limited).toEqual([expect.objectContaining({ level: 40, pool: 'web', count: N })]);
    expect(capped).toEqual([expect.objectContaining({ level: 40, pool: 'api', count: N })]);
    // At most 5 members named, each of the line's pool.
    for (const [line, p] of [[limited[0], 'web'] as const, [capped[0], 'api'] as const]) {
      expect(line?.members).toHaveLength(5);
      for (const m of (line?.members ?? []) as string[]) expect(keys(p)).toContain(m);
    }
  });

  test('a member set active by the operator ramps; a new leader carries the ramp on and starts none', async () => {
    const { clock, store, agg } = await leader(fleetOf({ slowStartS: 8, b: 'draining' }));
    agg.setFleet(fleetOf({ slowStartS: 8 }));
    await clock.advance(20);
    expect((await store.getDecided()).ramps.get('web/b')?.percent).toBe(20);
    // The successor: reads the ramp back, sees the fleet for the first time (no ramp for what it did not see).
    await agg.close();
    const next = createAggregator({ node: 'n2', store, logger, clock });
    open.push(next);
    const d = await store.getDecided();
    next.setDecided(d.decided, d.ramps);
    next.setMembers(['web/a', 'web/b']);
    next.setLiveNodes(new Set(NODES));
    next.setFleet(fleetOf({ slowStartS: 8, c: true }));
    next.start();
    await clock.advance(2_100);
    expect(next.isLeader).toBe(true);
    // Begun at the recompute after the fleet change (+20 ms, then RECOMPUTE_DELAY_MS).
    expect((await store.getDecided()).ramps).toEqual(new Map([['web/b', { percent: 40, sinceMs: T0 + 25 }]]));
  });

  test('a pool whose decided record etcd refuses (too large) does not restart the ramps of the other pools', async () => {
    const withBig = (b: string) =>
      parseFleet({
        hashSeed: 7,
        pools: [
          {
            name: 'web',
            healthCheck: { type: 'tcp' },
            slowStartS: 20,
            members: [
              { name: 'a', address: '198.18.0.1', port: 80 },
              { name: 'b', address: '198.18.0.2', port: 80, state: b },
            ],
          },
          { name: 'big', healthCheck: { type: 'tcp' }, members: [{ name: 'x', address: '198.18.1.1', port: 80 }] },
        ],
        vips: [
          { address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web' },
          { address: '198.51.100.11', port: 80, protocol: 'tcp', pool: 'big' },
        ],
      });
    const clock = createManualClock(T0);
    const store = new RefusingPoolStore('big');
    const agg = createAggregator({ node: 'n1', store, logger, clock });
    open.push(agg);
    await store.watchDecided({ onUpdate: (d) => agg.setDecided(d.decided, d.ramps) });
    for (const n of NODES) {
      const reg = await store.registerNode({ name: n, address: '198.18.0.9' });
      await reg.reportHealth(
        new Map([
          ['web/a', 'up'],
          ['big/x', 'up'],
        ]),
      );
    }
    agg.setMembers(['web/a', 'web/b', 'big/x']);
    agg.setLiveNodes(new Set(NODES));
    agg.setFleet(withBig('draining'));
    agg.start();
    await clock.advance(20);
    expect(agg.isLeader).toBe(true);
    expect((await store.getDecided()).decided.get('web/a')).toBe('up'); // the other pool is written
    // The operator sets b active: its ramp begins once, and steps from then, refusal or not.
    agg.setFleet(withBig('active'));
    await clock.advance(20);
    const began = (await store.getDecided()).ramps.get('web/b');
    expect(began?.percent).toBe(20);
    await clock.advance(10_000);
    expect((await store.getDecided()).ramps.get('web/b')).toEqual({ percent: 60, sinceMs: began?.sinceMs });
    await clock.advance(50_000);
    expect((await store.getDecided()).ramps.has('web/b')).toBe(false);
  });
});
