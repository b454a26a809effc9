/**
 * The aggregator's table-history step (second chance, docs/design/0011-second-chance.md): after each decision, the
 * inputs of every second-chance pool's table (the desired members, the decided status and ramps: what every node
 * builds its table from) are recorded in etcd's `history/<pool>`, with the inputs they replaced and when. Nodes
 * rebuild the earlier tables from the record, so all of them, a restarted one included, derive the same previous
 * owners. Earlier tables expire after the pool's `secondChance.retainS`, judged by the leader alone (nodes never expire
 * on their own, so they cannot disagree around the boundary): a table it recorded itself ages on its steady clock
 * (own-stamps.ts: its `untilMs` moves with each step of the wall clock), one it took over from another leader on its
 * wall clock, within the bound on times ahead (clock-bounds.ts).
 */
import {
  type DecidedStatus,
  type Fleet,
  type MemberRamps,
  nextExpiryMs,
  type PoolHistory,
  recordPoolTable,
  secondChanceActive,
  secondChanceOf,
  type TableHistory,
  tableInputsOf,
} from '@l4fleet/config';
import { latestBelievedMs } from './clock-bounds.js';
import { type HeldStep, WALL_CLOCK_ONLY } from './own-stamps.js';

export interface HistoryStep {
  /** The whole history to store: one entry per served second-chance pool. */
  readonly history: Map<string, PoolHistory>;
  /** Pools whose recorded current is now a slow-start step (a member ramps): the next step replaces it. */
  readonly rampSteps: Set<string>;
  /**
   * Pools whose stored record had an earlier table stamped later than the leader's clock allows (clock-bounds.ts),
   * capped to that bound (for the log): it expires within the pool's retainS of that bound, not of a clock ahead.
   */
  readonly capped: readonly string[];
  /** `history` differs from `stored`: write it. */
  readonly changed: boolean;
  /** When the next earlier table expires (ms since the epoch): run the step again then. */
  readonly nextExpiryMs?: number;
}

/**
 * `rampSteps`: the pools whose stored current is a slow-start step (the previous call's rampSteps); their next table
 * replaces it (recordPoolTable's replaceCurrent), so a ramp's steps and its end take one place in the history. A
 * new leader learns it at its first call during a ramp; until then it keeps a step, as for any change. `held`: how
 * the leader holds each stored `untilMs` (by pool; own-stamps.ts); default: the wall clock alone.
 */
export function nextTableHistory(
  fleet: Fleet,
  decided: DecidedStatus,
  ramps: MemberRamps,
  stored: TableHistory,
  nowMs: number,
  rampSteps: ReadonlySet<string> = new Set(),
  held: HeldStep = WALL_CLOCK_ONLY,
): HistoryStep {
  const served = new Set(fleet.vips.map((v) => v.pool));
  const ramping = new Set([...ramps.keys()].map((k) => k.slice(0, k.indexOf('/'))));
  const history = new Map<string, PoolHistory>();
  const steps = new Set<string>();
  const capped: string[] = [];
  const latestMs = latestBelievedMs(nowMs);
  let changed = false;
  let next: number | undefined;
  for (const pool of fleet.pools) {
    if (!served.has(pool.name) || !secondChanceActive(pool)) continue;
    const stamped = stored.get(pool.name);
    const { record: before, moved, ahead } = restamped(pool.name, stamped, held, latestMs);
    if (ahead) capped.push(pool.name);
    if (moved || ahead) changed = true;
    const inputs = tableInputsOf(pool, decided, ramps);
    const replace = rampSteps.has(pool.name);
    const h = recordPoolTable(before, pool.name, inputs, secondChanceOf(pool), nowMs, replace);
    if (h !== before) changed = true;
    // While a member ramps, the recorded current is always this step's inputs (recorded, or equal already).
    if (ramping.has(pool.name)) steps.add(pool.name);
    history.set(pool.name, h);
    const at = nextExpiryMs(h, secondChanceOf(pool));
    if (at !== undefined && (next === undefined || at < next)) next = at;
  }
  for (const pool of stored.keys()) if (!history.has(pool)) changed = true;
  return { history, changed, capped, rampSteps: steps, ...(next === undefined ? {} : { nextExpiryMs: next }) };
}

/**
 * `stamped` in the leader's wall time now: a table it recorded moves with the wall clock's steps since (`moved`),
 * so it expires retainS of steady time after it was replaced; one "until" a time ahead of the leader's clock is
 * taken as until the latest time it believes (`ahead`). The record itself when neither applies.
 */
function restamped(
  pool: string,
  stamped: PoolHistory | undefined,
  held: HeldStep,
  latestMs: number,
): { record: PoolHistory | undefined; moved: boolean; ahead: boolean } {
  if (!stamped) return { record: stamped, moved: false, ahead: false };
  let moved = false;
  let ahead = false;
  const earlier = stamped.earlier.map((t) => {
    let untilMs = Math.max(0, t.untilMs + (held(pool, t.untilMs) ?? 0));
    if (untilMs !== t.untilMs) moved = true;
    if (untilMs > latestMs) {
      ahead = true;
      untilMs = latestMs;
    }
    return untilMs === t.untilMs ? t : { ...t, untilMs };
  });
  return { record: moved || ahead ? { ...stamped, earlier } : stamped, moved, ahead };
}

/** The times of `history` the leader holds once it is written: each earlier table's `untilMs`, by pool. */
export function historyStamps(history: TableHistory): [string, number][] {
  return [...history].flatMap(([pool, h]) => h.earlier.map((t): [string, number] => [pool, t.untilMs]));
}
