/**
 * A view held back (one that could not be built, live-fleet.ts, or not serialised, served-view.ts) leaves the pages
 * and `/api/state` on the last good one. Served as it was, it would pass for current: a member decided down since
 * would show up, with no problem and etcd answering, for as long as the failure lasts. So the last good view is
 * served with one more problem, first: since when the view is not updated and why. It is cleared by the next view
 * built and sent.
 */
import type { FleetView } from './fleet-view.js';

export interface HoldBack {
  /**
   * `good` with the line on top of its problems; undefined when the view last returned says the same (same failure,
   * same time), so a failure repeated at every etcd change is not sent to the pages again each time.
   */
  held(good: FleetView, err: unknown): FleetView | undefined;
  /** A new view was built and sent: the next failure starts a new hold. */
  clear(): void;
}

/** `now`: the wall clock (the time is written out for the operator). */
export function createHoldBack(now: () => number): HoldBack {
  /** When the first failure of this hold happened (ms since the epoch): since then the served view is not current. */
  let sinceMs: number | null = null;
  let line: string | null = null;
  return {
    held(good, err) {
      sinceMs ??= now();
      const message = err instanceof Error ? err.message : String(err);
      const next = `view not updated since ${new Date(sinceMs).toISOString()}: ${message}`;
      if (next === line) return undefined;
      line = next;
      return { ...good, problems: [next, ...good.problems] };
    },
    clear() {
      sinceMs = null;
      line = null;
    },
  };
}
