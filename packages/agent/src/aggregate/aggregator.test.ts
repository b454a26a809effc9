import type { MemberStatus } from '@l4fleet/config';
import { type Leadership, MemoryFleetStore, StoreError } from '@l4fleet/store';
import pino from 'pino';
import { afterEach, describe, expect, test } from 'vitest';
import { createManualClock } from '../clock.js';
import { type Aggregator, createAggregator, OBSERVATION_LEAD_MS } from './aggregator.js';

const logger = pino({ level: 'silent' });
const MEMBER = 'web/a';
const NODES = ['n1', 'n2', 'n3'];

const open: Aggregator[] = [];
afterEach(async () => {
  for (const a of open.splice(0)) await a.close();
});

/** n1 leads; n1..n3 are registered and live and report MEMBER up in etcd. */
async function fleetOfThree() {
  const clock = createManualClock(1_700_000_000_000);
  const store = new MemoryFleetStore();
  const agg = createAggregator({ node: 'n1', store, logger, clock });
  open.push(agg);
  const regs = new Map(
    await Promise.all(
      NODES.map(async (n) => [n, await store.registerNode({ name: n, address: '198.18.0.1' })] as const),
    ),
  );
  const report = async (node: string, status: MemberStatus) =>
    regs.get(node)?.reportHealth(new Map([[MEMBER, status]]));
  for (const n of NODES) await report(n, 'up');
  agg.setMembers([MEMBER]);
  agg.setLiveNodes(new Set(NODES));
  agg.start();
  await clock.advance(20);
  expect(agg.isLeader).toBe(true);
  const decided = async () => (await store.getDecided()).decided.get(MEMBER);
  expect(await decided()).toBe('up');
  return { clock, agg, report, decided };
}

describe('aggregator - observations against etcd reports', () => {
  test('an etcd report written before an observation does not flip the decision back', async () => {
    const { clock, agg, report, decided } = await fleetOfThree();
    // n1 and n2 see the member down; NATS (and n1 itself) are faster than their etcd writes.
    agg.observe('n1', MEMBER, 'down');
    agg.observe('n2', MEMBER, 'down');
    await clock.advance(20);
    expect(await decided()).toBe('down');
    // n1's etcd write lands; the watch delivers every node's record, n2's still the old 'up'.
    await report('n1', 'down');
    await clock.advance(20);
    expect(await decided()).toBe('down');
    // n2's write lands: settled. Then etcd alone: n2 up again (no NATS) is believed.
    await report('n2', 'down');
    await clock.advance(20);
    expect(await decided()).toBe('down');
    await report('n2', 'up');
    await report('n1', 'up');
    await clock.advance(20);
    expect(await decided()).toBe('up');
  });

  test(`past ${OBSERVATION_LEAD_MS} ms etcd wins over an observation it never showed`, async () => {
    const { clock, agg, report, decided } = await fleetOfThree();
    agg.observe('n1', MEMBER, 'down');
    agg.observe('n2', MEMBER, 'down');
    await clock.advance(20);
    expect(await decided()).toBe('down');
    await clock.advance(OBSERVATION_LEAD_MS);
    // A change of n3's record makes the watch deliver all three: n1 and n2 still say 'up' in etcd.
    await report('n3', 'up');
    await clock.advance(20);
    expect(await decided()).toBe('up');
  });

  test(`past ${OBSERVATION_LEAD_MS} ms etcd wins also when etcd stays quiet`, async () => {
    const { clock, agg, decided } = await fleetOfThree();
    // n2 and n3 see the member down on NATS; their etcd writes never land, and nothing else changes in etcd.
    agg.observe('n2', MEMBER, 'down');
    agg.observe('n3', MEMBER, 'down');
    await clock.advance(20);
    expect(await decided()).toBe('down');
    await clock.advance(OBSERVATION_LEAD_MS - 1_000);
    expect(await decided()).toBe('down');
    await clock.advance(1_000);
    expect(await decided()).toBe('up');
    await clock.advance(60_000);
    expect(await decided()).toBe('up');
  });

  test(`the wall clock stepped back an hour: an observation still leads etcd for ${OBSERVATION_LEAD_MS} ms only`, async () => {
    const { clock, agg, report, decided } = await fleetOfThree();
    // n2 and n3 see the member down on NATS; their etcd writes never land.
    agg.observe('n2', MEMBER, 'down');
    agg.observe('n3', MEMBER, 'down');
    await clock.advance(20);
    expect(await decided()).toBe('down');
    clock.stepWall(-3_600_000); // NTP: steady time and the timers go on
    await clock.advance(OBSERVATION_LEAD_MS);
    expect(await decided(), 'etcd quiet: the expiry timer gave the lead up').toBe('up');
    // A delivery of etcd's reports past the lead: they stand.
    await report('n1', 'up');
    await clock.advance(20);
    expect(await decided()).toBe('up');
  });

  test('a live node whose health record is gone from etcd (every member unknown to it) no longer votes', async () => {
    const clock = createManualClock(1_700_000_000_000);
    const store = new HealthRecordsStore();
    const agg = createAggregator({ node: 'n1', store, logger, clock });
    open.push(agg);
    const regs = await Promise.all(NODES.map((n) => store.registerNode({ name: n, address: '198.18.0.1' })));
    for (const r of regs) await r.reportHealth(new Map([[MEMBER, 'down']]));
    agg.setMembers([MEMBER]);
    agg.setLiveNodes(new Set(NODES));
    agg.start();
    await clock.advance(20);
    const decided = async () => (await store.getDecided()).decided.get(MEMBER);
    expect(await decided()).toBe('down');
    // n2 and n3 restarted: unknown leaves the member out of their reports, so etcd holds no record of theirs.
    await regs[1]?.reportHealth(new Map());
    await regs[2]?.reportHealth(new Map());
    await regs[0]?.reportHealth(new Map([[MEMBER, 'up']]));
    await clock.advance(20);
    expect(await decided()).toBe('up');
    // An observation of n2's that etcd has not shown yet still stands over its missing record.
    agg.observe('n2', MEMBER, 'down');
    agg.observe('n3', MEMBER, 'down');
    await clock.advance(20);
    expect(await decided()).toBe('down');
    await regs[0]?.reportHealth(new Map([[MEMBER, 'up']])); // a delivery with n2 and n3 still missing
    await clock.advance(20);
    expect(await decided()).toBe('down');
  });
});

/** A memory store that, like the etcd store, lists no health record for a node whose report is empty. */
class HealthRecordsStore extends MemoryFleetStore {
  override async watchHealthReports(...[listener]: Parameters<MemoryFleetStore['watchHealthReports']>) {
    return super.watchHealthReports({
      ...listener,
      onUpdate: (list) => listener.onUpdate(list.filter((r) => r.members.size > 0)),
    });
  }
}

/** A store whose health-report watch fails its first `failures` starts (an etcd blip on the initial read). */
class BlippingStore extends MemoryFleetStore {
  watchStarts = 0;
  constructor(private failures: number) {
    super();
  }
  override async watchHealthReports(...args: Parameters<MemoryFleetStore['watchHealthReports']>) {
    this.watchStarts += 1;
    if (this.failures > 0) {
      this.failures -= 1;
      throw new StoreError('UNAVAILABLE', 'watch health reports: etcd unavailable');
    }
    return super.watchHealthReports(...args);
  }
}

async function electedOverBlips(failures: number) {
  const clock = createManualClock(1_700_000_000_000);
  const store = new BlippingStore(failures);
  const leadership: boolean[] = [];
  const agg = createAggregator({ node: 'n1', store, logger, clock, onLeadership: (l) => leadership.push(l) });
  open.push(agg);
  for (const n of NODES) {
    const reg = await store.registerNode({ name: n, address: '198.18.0.1' });
    await reg.reportHealth(new Map([[MEMBER, 'up']]));
  }
  agg.setMembers([MEMBER]);
  agg.setLiveNodes(new Set(NODES));
  agg.start();
  await clock.advance(20);
  const decided = async () => (await store.getDecided()).decided.get(MEMBER);
  return { clock, store, agg, leadership, decided };
}

describe('aggregator - the health report watch', () => {
  test('its start fails once: the leader decides nothing from its own view alone, retries, then decides from all', async () => {
    const { clock, store, agg, decided } = await electedOverBlips(1);
    expect(agg.isLeader).toBe(true);
    // Only n1's own observation is known: one node is no majority of three.
    agg.observe('n1', MEMBER, 'down');
    await clock.advance(20);
    expect(await decided()).toBeUndefined();
    await clock.advance(2_000);
    expect(store.watchStarts).toBe(2);
    expect(await decided()).toBe('up'); // n2 and n3 say up in etcd
  });

  test('its start keeps failing: the leader resigns after a bounded number of tries, and campaigns again', async () => {
    const { clock, store, agg, leadership, decided } = await electedOverBlips(1_000);
    await clock.advance(60_000);
    expect(leadership.slice(0, 3)).toEqual([true, false, true]);
    expect(store.watchStarts).toBeLessThan(1_000);
    expect(await decided()).toBeUndefined();
    expect(agg.isLeader).toBe(true); // the campaign again (no other node here)
  });
});

/** A store whose decided writes fail while `failing` (etcd refusing writes), counting the attempts. */
class FailingWritesStore extends MemoryFleetStore {
  failing = true;
  writes = 0;
  override async writeDecided(...args: Parameters<MemoryFleetStore['writeDecided']>) {
    this.writes += 1;
    if (this.failing) throw new StoreError('UNAVAILABLE', 'write decided: etcd unavailable');
    return super.writeDecided(...args);
  }
}

describe('aggregator - failing decision writes', () => {
  test('events during failing writes keep one retry going, not one per event', async () => {
    const clock = createManualClock(1_700_000_000_000);
    const store = new FailingWritesStore();
    const agg = createAggregator({ node: 'n1', store, logger, clock });
    open.push(agg);
    for (const n of NODES) {
      const reg = await store.registerNode({ name: n, address: '198.18.0.1' });
      await reg.reportHealth(new Map([[MEMBER, 'down']]));
    }
    agg.setMembers([MEMBER]);
    agg.setLiveNodes(new Set(NODES));
    agg.start();
    await clock.advance(20);
    expect(agg.isLeader).toBe(true);
    // 20 events while etcd refuses the writes: each recomputes (and fails) once.
    for (let i = 0; i < 20; i++) {
      agg.observe('n3', MEMBER, i % 2 === 0 ? 'up' : 'down');
      await clock.advance(20);
    }
    const before = store.writes;
    await clock.advance(5_000);
    // One retry a second (RETRY_MS), whatever the number of events.
    expect(store.writes - before).toBeLessThanOrEqual(6);
    store.failing = false;
    await clock.advance(1_100);
    expect((await store.getDecided()).decided.get(MEMBER)).toBe('down');
    await agg.close();
    expect(clock.pending).toBe(0);
  });
});

describe('aggregator - observations kept', () => {
  test('a follower keeps observations only of live nodes and current members, and drops stale ones', async () => {
    const clock = createManualClock(1_700_000_000_000);
    const store = new MemoryFleetStore();
    // Never started: a node that does not lead (no report watch prunes anything).
    const agg = createAggregator({ node: 'n1', store, logger, clock });
    open.push(agg);
    agg.setMembers(['web/a', 'web/b']);
    agg.setLiveNodes(new Set(NODES));
    // NATS delivers every node's observations of every member, including nodes and members this node does not know.
    for (let i = 0; i < 10_000; i++) agg.observe(`n${i % 50}`, `web/m${i}`, i % 2 === 0 ? 'up' : 'down');
    expect(agg.observationsKept).toBe(0);
    for (const n of NODES) {
      agg.observe(n, 'web/a', 'down');
      agg.observe(n, 'web/b', 'up');
    }
    // Per live node and member: its report entry and its not yet settled observation.
    expect(agg.observationsKept).toBe(2 * NODES.length * 2);
    agg.setLiveNodes(new Set(['n1', 'n2']));
    expect(agg.observationsKept).toBe(2 * 2 * 2);
    agg.setMembers(['web/a']);
    expect(agg.observationsKept).toBe(2 * 1 * 2);
    // Past the lead time no etcd report settles them: they go, and what they made the reports say with them (no
    // etcd report here to stand again).
    await clock.advance(OBSERVATION_LEAD_MS + 1);
    expect(agg.observationsKept).toBe(0);
    agg.observe('n1', 'web/a', 'down');
    expect(agg.observationsKept).toBe(2);
  });
});

/** A store whose campaign() is refused with the codes of `codes` in turn, the last one for good. */
class RefusedCampaignStore extends MemoryFleetStore {
  attempts = 0;
  constructor(private readonly codes: readonly ('AUTH' | 'UNAVAILABLE')[]) {
    super();
  }
  override async campaign(): Promise<never> {
    const code = this.codes[Math.min(this.attempts, this.codes.length - 1)] ?? 'AUTH';
    this.attempts += 1;
    throw new StoreError(code, `campaign of n1: etcdserver: ${code === 'AUTH' ? 'permission denied' : 'unavailable'}`);
  }
}

/** An aggregator over `store` whose warnings (and campaignFailed lines of any level) are recorded. */
function withLines(store: MemoryFleetStore) {
  const clock = createManualClock(1_700_000_000_000);
  const lines: { level: number; event: string; code?: string }[] = [];
  const logged = pino({ level: 'debug' }, { write: (l: string) => lines.push(JSON.parse(l)) });
  const agg = createAggregator({ node: 'n1', store, logger: logged, clock });
  open.push(agg);
  return { clock, agg, lines, warned: () => lines.filter((l) => l.level >= 40) };
}

describe('aggregator - a refused campaign', () => {
  // No permission on election/: retried for ever with nothing above debug, so no node led, nothing was decided, and
  // the operator saw nothing.
  test('refused for good (AUTH) for 60 s: one warning naming the code; the retries at debug', async () => {
    const store = new RefusedCampaignStore(['AUTH']);
    const { clock, agg, lines, warned } = withLines(store);
    agg.start();
    await clock.advance(60_000);
    expect(store.attempts).toBeGreaterThan(10);
    expect(warned()).toHaveLength(1);
    expect(warned()[0]).toMatchObject({ event: 'campaignFailed', code: 'AUTH' });
    expect(lines.filter((l) => l.event === 'campaignFailed' && l.level === 20).length).toBe(store.attempts - 1);
    expect(agg.isLeader).toBe(false);
  });

  test('a failure of another code is warned again', async () => {
    const store = new RefusedCampaignStore(['UNAVAILABLE', 'UNAVAILABLE', 'AUTH']);
    const { clock, agg, warned } = withLines(store);
    agg.start();
    await clock.advance(10_000);
    expect(warned().map((l) => l.code)).toEqual(['UNAVAILABLE', 'AUTH']);
  });
});

/** A store whose decided writes land, then wait for `release()` (a slow etcd answer); its leaderships are kept. */
class HeldWritesStore extends MemoryFleetStore {
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
  override async writeDecided(...args: Parameters<MemoryFleetStore['writeDecided']>) {
    await super.writeDecided(...args);
    await this.gate;
  }
}

describe('aggregator - leadership lost and regained during a write', () => {
  // Term 1's write was in flight: term 2's recomputes found `writing` and left it to term 1's loop, which ended
  // (its leadership gone) without running them; the member kept its old status until an unrelated event.
  test('what term 2 asked for while term 1 wrote is decided once the write ends', async () => {
    const clock = createManualClock(1_700_000_000_000);
    const store = new HeldWritesStore();
    const agg = createAggregator({ node: 'n1', store, logger, clock });
    open.push(agg);
    const regs = await Promise.all(NODES.map((n) => store.registerNode({ name: n, address: '198.18.0.1' })));
    for (const r of regs) await r.reportHealth(new Map([[MEMBER, 'up']]));
    agg.setMembers([MEMBER]);
    agg.setLiveNodes(new Set(NODES));
    agg.start();
    await clock.advance(20);
    const decided = async () => (await store.getDecided()).decided.get(MEMBER);
    expect(await decided()).toBe('up');
    store.hold();
    for (const r of regs) await r.reportHealth(new Map([[MEMBER, 'down']]));
    await clock.advance(20);
    expect(await decided()).toBe('down'); // written; the write's answer held
    await store.leaderships[0]?.resign();
    await clock.advance(1_150);
    expect(store.leaderships).toHaveLength(2);
    expect(agg.isLeader).toBe(true);
    for (const r of regs) await r.reportHealth(new Map([[MEMBER, 'up']]));
    await clock.advance(50);
    store.release();
    for (let i = 0; i < 20; i++) await clock.advance(1_000);
    expect(await decided()).toBe('up');
  });

  // Term 1's loop going on after its write's answer as if it still led would log memberDecided and count the write
  // (onDecisionsWritten) in term 2's time, and hand term 2 its `written`, ramp timer and started members.
  test("term 1's write answered after term 2 began is neither logged nor counted: only term 2's decision is", async () => {
    const clock = createManualClock(1_700_000_000_000);
    const store = new HeldWritesStore();
    const lines: { event?: string; member?: string; status?: string }[] = [];
    const recorded = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
    const counted: number[] = [];
    const agg = createAggregator({
      node: 'n1',
      store,
      logger: recorded,
      clock,
      onDecisionsWritten: (n) => counted.push(n),
    });
    open.push(agg);
    // As the agent does: the decided state etcd holds comes back by the watch.
    const watch = await store.watchDecided({ onUpdate: (s) => agg.setDecided(s.decided, s.ramps) });
    try {
      const regs = await Promise.all(NODES.map((n) => store.registerNode({ name: n, address: '198.18.0.1' })));
      for (const r of regs) await r.reportHealth(new Map([[MEMBER, 'up']]));
      agg.setMembers([MEMBER]);
      agg.setLiveNodes(new Set(NODES));
      agg.start();
      await clock.advance(20);
      const decided = async () => (await store.getDecided()).decided.get(MEMBER);
      expect(await decided()).toBe('up');
      store.hold();
      for (const r of regs) await r.reportHealth(new Map([[MEMBER, 'down']]));
      await clock.advance(20);
      expect(await decided()).toBe('down'); // term 1's write landed; its answer is held
      await store.leaderships[0]?.resign();
      await clock.advance(1_150);
      expect(store.leaderships).toHaveLength(2);
      for (const r of regs) await r.reportHealth(new Map([[MEMBER, 'up']]));
      await clock.advance(50);
      const before = { lines: lines.length, counted: counted.length };
      store.release();
      for (let i = 0; i < 5; i++) await clock.advance(1_000);
      expect(await decided()).toBe('up');
      const decisions = lines
        .slice(before.lines)
        .filter((l) => l.event === 'memberDecided')
        .map((l) => l.status);
      expect(decisions, "term 2's decision only").toEqual(['up']);
      expect(counted.slice(before.counted)).toEqual([1]);
    } finally {
      await watch.close();
    }
  });
});
