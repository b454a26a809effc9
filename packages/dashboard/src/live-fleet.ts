/**
 * Keeps the fleet view current from etcd: one watch per input (desired, decided, nodes, health reports, leader,
 * table history), each delivering its current value first, then changes, and a reachability check (etcd-check.ts)
 * so an outage shows on the page instead of a silently stale view. The view is rebuilt at most every
 * REBUILD_DELAY_MS so a burst of changes (a member flip writes health from every node) costs one rebuild and one
 * push to the pages; a rebuild builds only the tables of the VIPs whose inputs changed (fleet-view.ts VipTableCache).
 * A rebuild that throws shows too: the last good view is served with a problem saying since when it is not updated.
 * Started during an outage, it serves a page that says so and opens the watches when etcd answers (a dashboard
 * started with its host, before etcd, must not exit: there is nobody to restart it).
 */
import { type Clock, systemClock, withTimeout } from '@l4fleet/agent';
import { EMPTY_FLEET, type FleetStore, type StoreError, type Watch } from '@l4fleet/store';
import type { Logger } from 'pino';
import { checkEtcd, type EtcdCheck, type EtcdCheckOptions } from './etcd-check.js';
import {
  buildFleetView,
  createVipTableCache,
  type FleetInputs,
  type FleetView,
  type VipTableCache,
} from './fleet-view.js';
import { createHoldBack } from './held-view.js';
import { warnEvery } from './warn-every.js';

/** Coalescing delay between an etcd change and the rebuilt view. */
export const REBUILD_DELAY_MS = 100;
/** Pause before opening the watches again after an attempt failed (the dashboard started during an outage). */
export const WATCH_RETRY_MS = 2_000;
/**
 * One attempt's bound. The store's reads give up on a dead endpoint by themselves (each within its 2 s attempt
 * deadline); this only keeps the retries going when a member accepts the connection and never answers.
 */
export const WATCH_OPEN_TIMEOUT_MS = 15_000;

export interface LiveFleet {
  /** The latest view (built from the last good value of every input). */
  view(): FleetView;
  /** The last good value of every input (explain reads the fleet and decisions from here, not from etcd). */
  inputs(): FleetInputs;
  /** Called with every rebuilt view; returns an unsubscribe function. */
  subscribe(listener: (view: FleetView) => void): () => void;
  close(): Promise<void>;
}

/** The reachability check's clock and intervals, and the watches' retry (tests); both always run. */
export interface LiveFleetOptions extends Omit<EtcdCheckOptions, 'onChange'> {
  readonly watchRetryMs?: number;
  readonly watchOpenTimeoutMs?: number;
  /** Each VIP's table row between rebuilds (tests pass one with a counted builder); default: a cache of its own. */
  readonly vipTables?: VipTableCache;
}

type Inputs = { -readonly [K in keyof FleetInputs]: FleetInputs[K] };

const closeAll = (watches: readonly Watch[]) => Promise.all(watches.map((w) => w.close().catch(() => undefined)));

/** Opens every watch, or none: on a failure the ones already open are closed and the error is thrown. */
async function openWatches(
  store: FleetStore,
  set: <K extends keyof Inputs>(input: K) => (value: Inputs[K]) => void,
  onError: (input: string) => (err: StoreError) => void,
): Promise<Watch[]> {
  const watches: Watch[] = [];
  try {
    watches.push(await store.watchDesired({ onUpdate: set('desired'), onError: onError('desired') }));
    watches.push(await store.watchDecided({ onUpdate: set('decided'), onError: onError('decided') }));
    watches.push(await store.watchNodes({ onUpdate: set('nodes'), onError: onError('nodes') }));
    watches.push(await store.watchHealthReports({ onUpdate: set('health'), onError: onError('health') }));
    watches.push(await store.watchTableHistory({ onUpdate: set('history'), onError: onError('history') }));
    watches.push(await store.observeLeader({ onUpdate: set('leader'), onError: onError('leader') }));
  } catch (err) {
    await closeAll(watches);
    throw err;
  }
  return watches;
}

export async function watchFleet(store: FleetStore, logger: Logger, opts: LiveFleetOptions = {}): Promise<LiveFleet> {
  const { watchRetryMs, watchOpenTimeoutMs, vipTables, ...checkOpts } = opts;
  // One cache for the life of the view: a rebuild builds the tables of the VIPs whose inputs changed, not all of them.
  const tables = vipTables ?? createVipTableCache();
  const clock: Clock = opts.clock ?? systemClock;
  const retryMs = watchRetryMs ?? WATCH_RETRY_MS;
  const openTimeoutMs = watchOpenTimeoutMs ?? WATCH_OPEN_TIMEOUT_MS;
  const inputs: Inputs = {
    desired: { fleet: EMPTY_FLEET, revision: 0, generation: '' },
    decided: { decided: new Map(), ramps: new Map(), revision: 0 },
    nodes: [],
    health: [],
    leader: undefined,
    history: { history: new Map(), revision: 0 },
  };
  let etcd: EtcdCheck | undefined;
  /** Why the watches are not open yet; null once they are. */
  let notWatching: string | null = 'not opened yet';
  let failedAttempts = 0;
  const build = () => buildFleetView(inputs, etcd?.state(), notWatching, tables);
  /** The last view built. */
  let good = build();
  /** What view() serves and the listeners were last told: `good`, or `good` marked as held back (held-view.ts). */
  let current = good;
  const listeners = new Set<(view: FleetView) => void>();
  const warn = warnEvery(logger, () => clock.monoMs());
  const holdBack = createHoldBack(() => clock.now());
  /**
   * Whether there is a new view for the pages: a build that throws (a bug, or a view past what memory holds) runs in
   * a timer, where nothing would catch it and the process would end. The last good view keeps serving, as for bad
   * stored input, with a problem saying since when it is not updated (told once per failure, not at every change).
   */
  const rebuild = (): boolean => {
    try {
      good = build();
      current = good;
      holdBack.clear();
      return true;
    } catch (err) {
      warn('viewBuildFailed', err);
      const held = holdBack.held(good, err);
      if (held === undefined) return false;
      current = held;
      return true;
    }
  };
  let timer: unknown;
  const schedule = () => {
    timer ??= clock.setTimeout(() => {
      timer = undefined;
      if (!rebuild()) return;
      for (const l of listeners) {
        try {
          l(current);
        } catch (err) {
          warn('viewListenerFailed', err);
        }
      }
    }, REBUILD_DELAY_MS);
  };
  const set =
    <K extends keyof Inputs>(input: K) =>
    (value: Inputs[K]) => {
      inputs[input] = value;
      schedule();
    };
  // Invalid stored state is reported, not delivered: the page keeps the last good view (the agents do the same).
  const onError = (input: string) => (err: StoreError) =>
    logger.warn({ event: 'watchProblem', input, code: err.code, err: err.message });
  const watches: Watch[] = [];
  let closed = false;
  let retry: unknown;

  /** One attempt; on failure the next is scheduled, so there is one chain of attempts, ended by close(). */
  const open = async (): Promise<void> => {
    const attempt = openWatches(store, set, onError);
    try {
      const opened = await withTimeout(clock, attempt, openTimeoutMs, 'open the etcd watches');
      if (closed) {
        await closeAll(opened);
        return;
      }
      watches.push(...opened);
      if (failedAttempts > 0) logger.info({ event: 'etcdWatching', failedAttempts });
      notWatching = null;
    } catch (err) {
      void attempt.then(closeAll, () => undefined); // a late success after the timeout: close what it opened
      const problem = err instanceof Error ? err.message : String(err);
      if (problem !== notWatching) logger.warn({ event: 'etcdWatchFailed', err: problem, retryMs });
      notWatching = problem;
      failedAttempts += 1;
      if (!closed) retry = clock.setTimeout(() => void open(), retryMs);
    }
    schedule();
  };

  etcd = checkEtcd(store, {
    ...checkOpts,
    onChange: (state) => {
      if (state.reachable) logger.info({ event: 'etcdAnswers' });
      else logger.warn({ event: 'etcdUnreachable', err: state.problem });
      schedule();
    },
  });
  await open();
  rebuild();
  return {
    view: () => current,
    inputs: () => inputs,
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async close() {
      closed = true;
      etcd?.close();
      clock.clearTimeout(retry);
      clock.clearTimeout(timer);
      listeners.clear();
      await closeAll(watches);
    },
  };
}
