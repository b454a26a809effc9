/**
 * When a failed backend left the tables, told from the agents' own record (lab-scenario.ts agentTimeline): the
 * aggregator's decision and each node's table apply after it, each bounded by its own mechanism. One bound from the
 * kill to the last new flow that reached the backend (interval x fall + 1 s) missed by 38-734 ms on a loaded CI VM
 * (2026-12-02) and could not say which part was late.
 */
import { type Lab, labFleet } from '@l4fleet/lab';

/**
 * From the aggregator's decision until a node's tables without the member are applied: the decided record's way to
 * the node (an etcd watch), the reconciler's pass (it may wait for one in flight) and the apply itself (tens of ms
 * for the lab's tables).
 */
export const APPLY_AFTER_DECIDED_MAX_MS = 1_000;

/**
 * How much sooner than the aggregator's decided line a node may apply the decision: the line comes after the etcd
 * write returns, and the nodes' watches may deliver the write first (a quiet run of 2026-12-07: two nodes applied it
 * 1-3 ms before the line; a loaded lab delays the aggregator's return more than the watches).
 */
export const APPLY_BEFORE_DECIDED_MAX_MS = 500;

/** A pool's health check, as far as its timing goes. */
export interface CheckTiming {
  readonly intervalMs: number;
  readonly fall: number;
  readonly timeoutMs: number;
}

/** The health check of `pool` in the fleet the lab applies (labFleet): the bounds follow it, not a copy here. */
export function labPoolCheck(lab: Lab, pool: string): CheckTiming {
  const fleet = labFleet(lab.topology) as { pools: { name: string; healthCheck: CheckTiming }[] };
  const check = fleet.pools.find((p) => p.name === pool)?.healthCheck;
  if (!check) throw new Error(`the lab fleet has no pool "${pool}" with a health check`);
  return check;
}

/**
 * The latest a member killed at 0 is decided down, ms: its first failing probe starts within one interval of the
 * kill, the fall-th one (fall - 1) intervals later, and ends within the check's timeout. A refused port (the lab's
 * killed backend) answers at once, so the timeout is left to the report's way to the aggregator (20 ms, an etcd
 * write and watch) and its decided write.
 */
export function decidedBoundMs(check: CheckTiming): number {
  return check.intervalMs * check.fall + check.timeoutMs;
}

export interface MemberDownRecord {
  /** The first node's observation "down" of the member, ms after the failure; undefined: none. */
  readonly observedMs: number | undefined;
  /** The first decision "down" of the member, ms after the failure; undefined: none. */
  readonly decidedMs: number | undefined;
  /**
   * Each node's last table apply that changed slots from the decision - APPLY_BEFORE_DECIDED_MAX_MS to the decision +
   * APPLY_AFTER_DECIDED_MAX_MS, ms after the failure; undefined: none in that window (or no decision).
   */
  readonly appliedMs: Readonly<Record<string, number | undefined>>;
}

/**
 * Reads `member`'s (pool/name) observations, decision and `nodes`' table applies from an agentTimeline text (lines
 * "+ms node event {detail}"). A member leaving the tables moves its slots, so only an apply with slotsChanged > 0
 * counts (the reconciler's tablesApplied line): an apply that moved none (a write that changes no table, another
 * pool's 0-slot change) carries no decision. The aggregator logs its decision once etcd took the write, and the nodes'
 * watches may deliver it sooner, so the window opens APPLY_BEFORE_DECIDED_MAX_MS before that line. An apply does not
 * say which decision it carries (another pool's slots may move in the same window), so the per-node check says only
 * that each node moved slots within the window; the last new flow that reached the backend is what bounds the effect
 * (lab-steps.ts).
 */
export function memberDownRecord(timeline: string, member: string, nodes: readonly string[]): MemberDownRecord {
  const events: { ms: number; node: string; event: string; detail: Record<string, unknown> }[] = [];
  for (const line of timeline.split('\n')) {
    const m = /^\+(\d+) ms (\S+) (\S+) (\{.*\})$/.exec(line);
    if (!m) continue;
    events.push({ ms: Number(m[1]), node: m[2] ?? '', event: m[3] ?? '', detail: JSON.parse(m[4] ?? '{}') });
  }
  const down = (event: string) =>
    events.find((e) => e.event === event && e.detail.member === member && e.detail.status === 'down')?.ms;
  const observedMs = down('memberObserved');
  const decidedMs = down('memberDecided');
  const appliedMs: Record<string, number | undefined> = {};
  for (const node of nodes) {
    const within = events.filter(
      (e) =>
        e.node === node &&
        e.event === 'tablesApplied' &&
        typeof e.detail.slotsChanged === 'number' &&
        e.detail.slotsChanged > 0 &&
        decidedMs !== undefined &&
        e.ms >= decidedMs - APPLY_BEFORE_DECIDED_MAX_MS &&
        e.ms <= decidedMs + APPLY_AFTER_DECIDED_MAX_MS,
    );
    appliedMs[node] = within.at(-1)?.ms;
  }
  return { observedMs, decidedMs, appliedMs };
}
