/**
 * The aggregator: one node at a time (etcd3 Election through the store) turns the nodes' health reports into
 * decided member status and writes it to etcd. Reports arrive by etcd (leased, the truth: they vanish with their
 * node) and by NATS (faster; optional); observations.ts keeps them. A decision is written only when it changes,
 * fenced by the leadership (decided-write.ts); a failed write is retried by one timer, however many events arrive
 * meanwhile.
 * With the decisions it writes the slow-start ramps (slow-start.ts) into the same records, and after them it records
 * the table history of second-chance pools (history.ts, 0011), fenced the same way. A write whose only failure is a
 * pool's record too large for etcd (the other pools written) counts as written (decided-refusal.ts). The times in
 * those records are wall-clock times; what this leader stamped ages on its steady clock (own-stamps.ts).
 */
import { type Fleet, type MemberRamps, type MemberStatus, startedMembers, type TableHistory } from '@l4fleet/config';
import type { FleetStore, Leadership, StoreError, Watch } from '@l4fleet/store';
import type { Logger } from 'pino';
import { type Clock, sleep, systemClock } from '../clock.js';
import { DEFAULT_LEASE_TTL_S } from '../config/defaults.js';
import { isRejectedRecord, type RecordFamily } from '../etcd/rejected-records.js';
import type { ObservedStatus } from '../health/hysteresis.js';
import { timerDelayMs } from './clock-bounds.js';
import { decideAll, decisionDelta } from './decide.js';
import { createRefusals } from './decided-refusal.js';
import { writeDecided } from './decided-write.js';
import { historyStamps, nextTableHistory } from './history.js';
import { createObservations } from './observations.js';
import { createOwnStamps, createWallSteps } from './own-stamps.js';
import { warnRamps } from './ramp-warnings.js';
import { nextRamps, rampChanges } from './slow-start.js';

/** Kept here too: the aggregator's tests and callers know the lead time by this module. */
export { OBSERVATION_LEAD_MS } from './observations.js';

export interface AggregatorOptions {
  readonly node: string;
  readonly store: FleetStore;
  readonly logger: Logger;
  readonly clock?: Clock;
  /** Election lease TTL, s; default agent.yaml's etcd.leaseTtlS default. */
  readonly leaseTtlS?: number;
  readonly onLeadership?: (leader: boolean) => void;
  readonly onDecisionsWritten?: (changed: number) => void;
  /** The store refused a health report record (StoreError `INVALID_RECORD`); the others still count. */
  readonly onRejectedRecord?: (family: RecordFamily, err: StoreError) => void;
}

export interface Aggregator {
  start(): void;
  /** Members to decide (from the desired state). */
  setMembers(keys: readonly string[]): void;
  setLiveNodes(nodes: ReadonlySet<string>): void;
  /** The decided state as etcd has it (from the agent's watch): decisions and slow-start ramps. */
  setDecided(decided: ReadonlyMap<string, MemberStatus>, ramps: MemberRamps): void;
  /** The desired fleet (its pools' table inputs go into the table history). */
  setFleet(fleet: Fleet): void;
  /** The table history as etcd has it (from the agent's watch). */
  setHistory(history: TableHistory): void;
  /** The store refused a history record: the leader rewrites the last good history (a node starting now needs it). */
  historyRejected(): void;
  /** One node's observation of one member (NATS, or this node itself). */
  observe(node: string, member: string, status: ObservedStatus): void;
  readonly isLeader: boolean;
  /** Entries held: each node's reported members plus its unsettled observations (bounded by live nodes x members). */
  readonly observationsKept: number;
  close(): Promise<void>;
}

const RETRY_MS = 1_000;
const RECOMPUTE_DELAY_MS = 5;
/**
 * Starts of the health report watch a leader tries (waiting 1, 2, 4 and 8 s between them) before it resigns: a
 * leader that cannot read the reports must not decide from its own view and NATS alone (one node's view would count
 * as the majority), and another node may reach etcd.
 */
const HEALTH_WATCH_ATTEMPTS = 5;
const HEALTH_WATCH_RETRY_MAX_MS = 8_000;

export function createAggregator(opts: AggregatorOptions): Aggregator {
  const clock = opts.clock ?? systemClock;
  const log = opts.logger.child({ component: 'aggregator' });
  // An observation that lost its lead with etcd quiet changes a node's report: decide again.
  const observed = createObservations(clock, () => schedule());
  let members: readonly string[] = [];
  let decided: ReadonlyMap<string, MemberStatus> = new Map();
  /** What this leader wrote last; etcd's echo may lag, and deciding against stale state would undo a tie rule. */
  let written: Map<string, MemberStatus> | undefined;
  let storedRamps: MemberRamps = new Map();
  /** Like `written`, for the ramps. */
  let writtenRamps: MemberRamps | undefined;
  /** Members set active or added while this node leads, not yet given a ramp (config's startedMembers). */
  const started = new Set<string>();
  let rampTimer: unknown;
  let fleet: Fleet | undefined;
  let storedHistory: TableHistory = new Map();
  /** Like `written`, for the table history. */
  let writtenHistory: TableHistory | undefined;
  /** Pools whose recorded current is a slow-start step (history.ts): the next step replaces it. */
  let rampSteps: ReadonlySet<string> = new Set();
  let expiryTimer: unknown;
  let rewriteHistory = false;
  /** The ramps' `sinceMs` and the tables' `untilMs` this leader holds (own-stamps.ts). */
  const heldRamps = createOwnStamps(clock);
  const heldTables = createOwnStamps(clock);
  const wallStep = createWallSteps(clock);
  let leadership: Leadership | undefined;
  let reportWatch: Watch | undefined;
  /** The report watch of this term delivered the reports: until then there is nothing to decide from. */
  let reportsLoaded = false;
  let closed = false;
  let timer: unknown;
  /** The one retry after a failed write: events while writes fail must not each start another retry chain. */
  let retryTimer: unknown;
  let writing = false;
  let dirty = false;
  /** Records of pools etcd refused as too large (decided-refusal.ts); `retryRefused`: its retry is due. */
  const refusals = createRefusals();
  const decidedWrite = { store: opts.store, refusals, log };
  let retryRefused = false;
  /** Errors recordHistory logged already (as tableHistoryWriteFailed), for the retry's catch. */
  const historyFailures = new WeakSet<object>();

  const schedule = (): void => {
    if (!leadership || closed || timer !== undefined) return;
    timer = clock.setTimeout(() => {
      timer = undefined;
      void recompute();
    }, RECOMPUTE_DELAY_MS);
  };

  /** The one retry (of a failed write, or of the records etcd refused: `refused`, decided-write.ts). */
  const retryIn = (ms: number, refused: boolean): void => {
    clock.clearTimeout(retryTimer);
    retryTimer = clock.setTimeout(() => {
      retryTimer = undefined;
      if (refused) retryRefused = true;
      void recompute();
    }, ms);
  };

  const recompute = async (): Promise<void> => {
    const lead = leadership;
    if (!lead?.isLeader() || closed || !reportsLoaded) return;
    if (writing) {
      dirty = true;
      return;
    }
    writing = true;
    try {
      do {
        dirty = false;
        const current = written ?? new Map(decided);
        const currentRamps = writtenRamps ?? storedRamps;
        const next = decideAll(members, observed.reports, observed.live, current);
        const delta = decisionDelta(current, next);
        const now = clock.now();
        const heldNow = heldRamps.steps(); // read with `now`: the ramps' times are in this wall time
        const stepMs = wallStep();
        if (stepMs !== 0) log.warn({ event: 'wallClockStepped', stepMs }); // the held times move with it
        const ramp = fleet
          ? nextRamps({
              fleet,
              before: current,
              after: next,
              ramps: currentRamps,
              started: new Set(started),
              nowMs: now,
              held: heldNow,
            })
          : { ramps: new Map(currentRamps), changed: false, begun: [], capped: [], limited: [] };
        warnRamps(log, ramp, currentRamps, now);
        const startedNow = [...started];
        const retry = retryRefused;
        retryRefused = false;
        if (delta.set.size > 0 || delta.remove.length > 0 || ramp.changed || retry) {
          // Pools that had a ramp are written even when nothing is left in them, so no ended ramp stays behind.
          const pools = [...currentRamps.keys()].map((k) => k.slice(0, k.indexOf('/')));
          const refusedRetryMs = await writeDecided(decidedWrite, lead, next, ramp.ramps, pools);
          // Leadership lost (and maybe won again) during the write: what this term wrote is not the new term's to
          // hold (lead() started it from etcd's state); the finally hands it what was asked for meanwhile.
          if (lead !== leadership) return;
          if (refusedRetryMs !== undefined) retryIn(refusedRetryMs, true);
          written = next;
          writtenRamps = ramp.ramps;
          for (const [member, status] of delta.set) log.info({ event: 'memberDecided', member, status });
          for (const c of rampChanges(currentRamps, ramp.ramps)) log.info({ event: 'memberSlowStart', ...c });
          if (delta.set.size > 0 || delta.remove.length > 0)
            opts.onDecisionsWritten?.(delta.set.size + delta.remove.length);
        }
        // Written, or as etcd has them: held from now on (a failed write threw: the ones held before stay held), in
        // the wall time of `now`, not of the write's end: a wall-clock step during the write moves them next pass.
        if (fleet)
          heldRamps.hold(
            [...ramp.ramps].map(([m, r]) => [m, r.sinceMs]),
            heldNow,
          );
        for (const k of startedNow) started.delete(k);
        clock.clearTimeout(rampTimer);
        rampTimer =
          ramp.nextStepMs === undefined
            ? undefined
            : clock.setTimeout(() => schedule(), timerDelayMs(ramp.nextStepMs, clock.now()));
        await recordHistory(lead, written ?? current, writtenRamps ?? currentRamps);
      } while (dirty && lead.isLeader() && !closed);
    } catch (err) {
      // A history write failure was logged as such (recordHistory): it is no failed decision.
      if (!historyFailures.has(err as object)) log.warn({ event: 'decisionWriteFailed', err: (err as Error).message });
      written = undefined;
      writtenRamps = undefined;
      writtenHistory = undefined;
      rampSteps = new Set(); // what etcd holds is not known now: keep the next step
      retryIn(RETRY_MS, false);
    } finally {
      writing = false;
      // A newer term's recomputes found `writing` and left it to this loop, which ended with its own term: run them.
      if (dirty && leadership !== lead) schedule();
    }
  };

  /** The table-history step after the decisions (the decided map nodes will build from); re-run at each expiry. */
  const recordHistory = async (
    lead: Leadership,
    decidedNow: ReadonlyMap<string, MemberStatus>,
    rampsNow: MemberRamps,
  ): Promise<void> => {
    if (!fleet) return;
    const nowMs = clock.now();
    const heldNow = heldTables.steps(); // read with `nowMs`, and held as of it (a step during the write moves them)
    const stored = writtenHistory ?? storedHistory;
    const step = nextTableHistory(fleet, decidedNow, rampsNow, stored, nowMs, rampSteps, heldNow);
    for (const pool of step.capped) log.warn({ event: 'tableHistoryTimeCapped', pool, nowMs });
    if (step.changed || rewriteHistory) {
      const rewrite = !step.changed;
      const wasAsked = rewriteHistory;
      rewriteHistory = false; // before the await: a record refused during the write asks again
      try {
        await opts.store.writeTableHistory(step.history, { leadership: lead });
        if (lead !== leadership) return; // a newer term holds what etcd has, not what this one wrote
      } catch (err) {
        // The retry must still rewrite the refused record (step.changed alone would be false then).
        if (wasAsked) rewriteHistory = true;
        const code = (err as Partial<StoreError>).code;
        log.warn({ event: 'tableHistoryWriteFailed', code, err: (err as Error).message });
        if (typeof err === 'object' && err !== null) historyFailures.add(err);
        throw err;
      }
      writtenHistory = step.history;
      log.info({ event: rewrite ? 'tableHistoryRewritten' : 'tableHistoryWritten', pools: step.history.size });
    }
    rampSteps = step.rampSteps; // written, or what etcd holds already
    heldTables.hold(historyStamps(step.history), heldNow);
    clock.clearTimeout(expiryTimer);
    expiryTimer =
      step.nextExpiryMs === undefined
        ? undefined
        : clock.setTimeout(() => schedule(), timerDelayMs(step.nextExpiryMs, clock.now()));
  };

  /** Starts the report watch; on failure tries again (HEALTH_WATCH_ATTEMPTS); undefined when it never started. */
  const watchReports = async (l: Leadership): Promise<Watch | undefined> => {
    for (let attempt = 1; attempt <= HEALTH_WATCH_ATTEMPTS; attempt++) {
      try {
        return await opts.store.watchHealthReports({
          onUpdate(list) {
            observed.fromEtcd(list);
            reportsLoaded = true;
            schedule();
          },
          onError(err) {
            if (isRejectedRecord(err) && opts.onRejectedRecord) return opts.onRejectedRecord('health', err);
            log.warn({ event: 'healthWatchError', code: err.code, err: err.message });
          },
        });
      } catch (err) {
        log.warn({ event: 'healthWatchFailed', attempt, err: (err as Error).message });
      }
      if (attempt === HEALTH_WATCH_ATTEMPTS) break;
      await sleep(clock, Math.min(RETRY_MS * 2 ** (attempt - 1), HEALTH_WATCH_RETRY_MAX_MS));
      if (closed || !l.isLeader()) break;
    }
    return undefined;
  };

  const lead = async (l: Leadership): Promise<void> => {
    leadership = l;
    reportsLoaded = false;
    written = undefined;
    writtenRamps = undefined;
    writtenHistory = undefined;
    rampSteps = new Set();
    heldRamps.clear(); // what etcd holds now is taken over (slow-start.ts, history.ts)
    heldTables.clear();
    started.clear();
    refusals.cleared();
    retryRefused = false;
    log.info({ event: 'aggregatorElected' });
    opts.onLeadership?.(true);
    reportWatch = await watchReports(l);
    if (closed) await reportWatch?.close().catch(() => undefined);
    else if (reportWatch) schedule();
    else if (l.isLeader()) {
      log.warn({ event: 'aggregatorResigned', reason: 'healthWatchFailed', attempts: HEALTH_WATCH_ATTEMPTS });
      await l.resign().catch(() => undefined);
    }
    await l.lost;
    leadership = undefined;
    observed.etcdEnded();
    opts.onLeadership?.(false);
    log.info({ event: 'aggregatorLost' });
    await reportWatch?.close().catch(() => undefined);
    reportWatch = undefined;
  };

  // A refused campaign is warned when it starts failing and when its code changes, the retries (one a second) at
  // debug. All at debug, a campaign refused for good (AUTH: no permission on election/) went on unseen: no node led,
  // nothing was decided. A campaign that goes through ends the run.
  let campaignFailing: string | undefined;
  const loop = async (): Promise<void> => {
    while (!closed) {
      try {
        const l = await opts.store.campaign(opts.node, { leaseTtlS: opts.leaseTtlS ?? DEFAULT_LEASE_TTL_S });
        campaignFailing = undefined;
        if (closed) {
          await l.resign().catch(() => undefined);
          return;
        }
        await lead(l);
      } catch (err) {
        if (closed) return;
        const code = String((err as Partial<StoreError>).code ?? 'INTERNAL');
        const line = { event: 'campaignFailed', code, err: (err as Error).message };
        if (code === campaignFailing) log.debug(line);
        else log.warn(line);
        campaignFailing = code;
      }
      if (!closed) await sleep(clock, RETRY_MS);
    }
  };

  return {
    start() {
      void loop();
    },
    setMembers(keys) {
      members = keys;
      observed.setMembers(keys);
      schedule();
    },
    setLiveNodes(nodes) {
      observed.setLiveNodes(nodes);
      schedule();
    },
    setDecided(d, ramps) {
      decided = d;
      storedRamps = ramps;
      // While a refusal stands, etcd's echo lacks the refused pools' decisions: the leader keeps what it decided.
      if (!writing && !refusals.standing) {
        written = undefined;
        writtenRamps = undefined;
      }
      schedule();
    },
    setFleet(f) {
      // Only a leader starts ramps, for what it saw happen (a successor does not replay its predecessor's fleet).
      if (fleet && leadership) for (const k of startedMembers(fleet, f)) started.add(k);
      fleet = f;
      schedule();
    },
    setHistory(h) {
      storedHistory = h;
      if (!writing) writtenHistory = undefined;
      schedule();
    },
    historyRejected() {
      rewriteHistory = true;
      schedule();
    },
    observe(node, member, status) {
      if (observed.observe(node, member, status)) schedule();
    },
    get isLeader() {
      return leadership?.isLeader() ?? false;
    },
    get observationsKept() {
      return observed.kept;
    },
    async close() {
      closed = true;
      observed.close();
      clock.clearTimeout(timer);
      clock.clearTimeout(expiryTimer);
      clock.clearTimeout(rampTimer);
      clock.clearTimeout(retryTimer);
      await reportWatch?.close().catch(() => undefined);
      await leadership?.resign().catch(() => undefined);
    },
  };
}
