/**
 * Whether etcd answers, for the page. The watches keep the last good view through an outage (etcd3 re-establishes
 * them by itself), so without this check the page would show a stale fleet as if it were current while the
 * operator is looking at it for exactly that outage. One read of the leader key per ETCD_CHECK_INTERVAL_MS, each
 * bounded by ETCD_CHECK_TIMEOUT_MS: the agents' fail-static probe asks the same question the same way (0009).
 */
import { type Clock, systemClock, withTimeout } from '@l4fleet/agent';
import type { FleetStore } from '@l4fleet/store';

/** Pause between the end of one check and the start of the next. */
export const ETCD_CHECK_INTERVAL_MS = 2_000;
/**
 * One check's bound: the agents' probe timeout with several endpoints (2 x the store's 2 s attempt deadline +
 * 0.5 s), so a hung member the store would skip is not taken for an outage.
 */
export const ETCD_CHECK_TIMEOUT_MS = 4_500;

export interface EtcdReachability {
  readonly reachable: boolean;
  /** When the first failed check of this outage ended (ms since the epoch); null while reachable. */
  readonly unreachableSinceMs: number | null;
  /** The last failed check's error; null while reachable. */
  readonly problem: string | null;
}

export const ETCD_REACHABLE: EtcdReachability = { reachable: true, unreachableSinceMs: null, problem: null };

export interface EtcdCheck {
  state(): EtcdReachability;
  close(): void;
}

export interface EtcdCheckOptions {
  readonly clock?: Clock;
  readonly intervalMs?: number;
  readonly timeoutMs?: number;
  /** Called when reachability flips, or the problem text of an outage changes. */
  readonly onChange: (state: EtcdReachability) => void;
}

/** Starts checking at once; one chain of checks (the next is scheduled when one ends), stopped by close(). */
export function checkEtcd(store: Pick<FleetStore, 'getLeader'>, opts: EtcdCheckOptions): EtcdCheck {
  const clock = opts.clock ?? systemClock;
  const intervalMs = opts.intervalMs ?? ETCD_CHECK_INTERVAL_MS;
  const timeoutMs = opts.timeoutMs ?? ETCD_CHECK_TIMEOUT_MS;
  let state = ETCD_REACHABLE;
  let closed = false;
  let timer: unknown;
  const set = (next: EtcdReachability) => {
    if (next.reachable === state.reachable && next.problem === state.problem) return;
    state = next;
    opts.onChange(state);
  };
  const check = async () => {
    try {
      await withTimeout(clock, store.getLeader(), timeoutMs, 'etcd check');
      set(ETCD_REACHABLE);
    } catch (err) {
      const problem = err instanceof Error ? err.message : String(err);
      set({ reachable: false, unreachableSinceMs: state.unreachableSinceMs ?? clock.now(), problem });
    }
    if (!closed) timer = clock.setTimeout(() => void check(), intervalMs);
  };
  void check();
  return {
    state: () => state,
    close() {
      closed = true;
      clock.clearTimeout(timer);
    },
  };
}
