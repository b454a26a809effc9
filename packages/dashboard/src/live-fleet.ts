/**
 * Keeps the fleet view current from etcd: one watch per input (desired, decided, nodes, health reports, leader,
 * table history), each delivering its current value first, then changes, and a reachability check (etcd-check.ts)
 * so an outage shows on the page instead of a silently stale view. The view is rebuilt at most every REBUILD_DELAY_MS so a
 * burst of changes (a member flip writes health from every node) costs one rebuild and one push to the pages.
 */
import { EMPTY_FLEET, type FleetStore, type StoreError, type Watch } from '@l4fleet/store';
import type { Logger } from 'pino';
import { checkEtcd, type EtcdCheck, type EtcdCheckOptions } from './etcd-check.js';
import { buildFleetView, type FleetInputs, type FleetView } from './fleet-view.js';

/** Coalescing delay between an etcd change and the rebuilt view. */
export const REBUILD_DELAY_MS = 100;

export interface LiveFleet {
  /** The latest view (built from the last good value of every input). */
  view(): FleetView;
  /** The last good value of every input (explain reads the fleet and decisions from here, not from etcd). */
  inputs(): FleetInputs;
  /** Called with every rebuilt view; returns an unsubscribe function. */
  subscribe(listener: (view: FleetView) => void): () => void;
  close(): Promise<void>;
}

/** `etcdCheck`: the reachability check's clock and intervals (tests); it always runs. */
export async function watchFleet(
  store: FleetStore,
  logger: Logger,
  etcdCheck: Omit<EtcdCheckOptions, 'onChange'> = {},
): Promise<LiveFleet> {
  const inputs: { -readonly [K in keyof FleetInputs]: FleetInputs[K] } = {
    desired: { fleet: EMPTY_FLEET, revision: 0, generation: '' },
    decided: { decided: new Map(), revision: 0 },
    nodes: [],
    health: [],
    leader: undefined,
    history: { history: new Map(), revision: 0 },
  };
  let etcd: EtcdCheck | undefined;
  const build = () => buildFleetView(inputs, etcd?.state());
  let current = build();
  const listeners = new Set<(view: FleetView) => void>();
  let timer: NodeJS.Timeout | undefined;
  const schedule = () => {
    timer ??= setTimeout(() => {
      timer = undefined;
      current = build();
      for (const l of listeners) l(current);
    }, REBUILD_DELAY_MS);
  };
  // Invalid stored state is reported, not delivered: the page keeps the last good view (the agents do the same).
  const onError = (input: string) => (err: StoreError) =>
    logger.warn({ event: 'watchProblem', input, code: err.code, err: err.message });
  const watches: Watch[] = [];
  const close = async () => {
    etcd?.close();
    if (timer) clearTimeout(timer);
    listeners.clear();
    await Promise.all(watches.map((w) => w.close().catch(() => undefined)));
  };
  try {
    watches.push(
      await store.watchDesired({
        onUpdate: (v) => {
          inputs.desired = v;
          schedule();
        },
        onError: onError('desired'),
      }),
      await store.watchDecided({
        onUpdate: (v) => {
          inputs.decided = v;
          schedule();
        },
        onError: onError('decided'),
      }),
      await store.watchNodes({
        onUpdate: (v) => {
          inputs.nodes = v;
          schedule();
        },
        onError: onError('nodes'),
      }),
      await store.watchHealthReports({
        onUpdate: (v) => {
          inputs.health = v;
          schedule();
        },
        onError: onError('health'),
      }),
      await store.watchTableHistory({
        onUpdate: (v) => {
          inputs.history = v;
          schedule();
        },
        onError: onError('history'),
      }),
      await store.observeLeader({
        onUpdate: (v) => {
          inputs.leader = v;
          schedule();
        },
        onError: onError('leader'),
      }),
    );
  } catch (err) {
    await close();
    throw err;
  }
  etcd = checkEtcd(store, {
    ...etcdCheck,
    onChange: (state) => {
      if (state.reachable) logger.info({ event: 'etcdAnswers' });
      else logger.warn({ event: 'etcdUnreachable', err: state.problem });
      schedule();
    },
  });
  current = build();
  return {
    view: () => current,
    inputs: () => inputs,
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    close,
  };
}
