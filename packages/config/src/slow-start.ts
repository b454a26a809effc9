/**
 * Slow start (HAProxy's `slowstart`, F5's "slow ramp time", Alteon's slow start): a member that starts taking new
 * flows again (decided up after down, or set active) gets a growing part of its weight for `slowStartS` seconds
 * instead of its whole share at once, so a backend with cold caches or a JIT still warming up is not handed 1/N of
 * every new connection the moment it returns.
 *
 * Maglev tables must be identical on every node (§3.4), so nodes never ramp on their own clocks: the elected
 * aggregator writes each member's step (`percent`) into the pool's decided record, and every node builds its
 * table from that record like any decision. The steps are RAMP_PERCENTS, each for 1/RAMP_PERCENTS.length of
 * `slowStartS`; then the member has its whole weight and the ramp is gone from the record. Each step is a table
 * change like a weight change: flows already placed stay by flow affinity (Maglev §3.3), only new flows move.
 */
import { type Problems, showValue } from './fields.js';
import type { Fleet, Pool } from './types.js';
import { memberKey } from './vip-key.js';

/** The longest slow start a pool may ask for, s (F5 allows up to 3,600 s too). */
export const MAX_SLOW_START_S = 3_600;
/** Part of its weight a ramping member has at each step, %. Four steps: four table changes per return. */
export const RAMP_PERCENTS: readonly number[] = [20, 40, 60, 80];

/** A member's ramp as the aggregator decided it: its current step and when the ramp began (the writer's clock). */
export interface MemberRamp {
  /** The step (RAMP_PERCENTS; 1-99 accepted): the member's table weight is its weight times percent / 100. */
  readonly percent: number;
  /** When the member started taking flows again, ms since the epoch (the aggregator's clock). */
  readonly sinceMs: number;
}

/** memberKey(pool, member) -> its ramp; members not in it have their whole weight. */
export type MemberRamps = ReadonlyMap<string, MemberRamp>;

export const NO_RAMPS: MemberRamps = new Map();

/**
 * Parses `pools[i].slowStartS`: `{}` when absent or 0 (off, the default; not written back, so a fleet that does not
 * use it stays readable by nodes that predate it), else `{slowStartS}`.
 */
export function slowStartField(p: Problems, path: string, v: unknown): { slowStartS?: number } {
  if (v === undefined || v === 0) return {};
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > MAX_SLOW_START_S) {
    p.add(path, `${showValue(v)} is not a slow start in seconds (0-${MAX_SLOW_START_S}; 0 is off)`);
    return {};
  }
  return { slowStartS: v };
}

/** The pool's slow start, s (absent: 0, off). */
export function slowStartOf(pool: Pick<Pool, 'slowStartS'>): number {
  return pool.slowStartS ?? 0;
}

/** The step of a ramp begun at `sinceMs`, at `nowMs`; undefined when it is over (the whole weight). */
export function rampPercentAt(sinceMs: number, nowMs: number, slowStartS: number): number | undefined {
  const stepMs = (slowStartS * 1_000) / RAMP_PERCENTS.length;
  if (stepMs <= 0) return undefined;
  const step = Math.floor(Math.max(0, nowMs - sinceMs) / stepMs);
  return RAMP_PERCENTS[step];
}

/** When the ramp begun at `sinceMs` takes its next step (or ends) after `nowMs`, ms since the epoch. */
export function nextRampStepMs(sinceMs: number, nowMs: number, slowStartS: number): number {
  const stepMs = (slowStartS * 1_000) / RAMP_PERCENTS.length;
  const step = Math.floor(Math.max(0, nowMs - sinceMs) / stepMs);
  return Math.ceil(sinceMs + (step + 1) * stepMs);
}

/**
 * The `sinceMs` that puts a ramp, at `nowMs`, at the start of its first step not below `percent`; undefined when no
 * step is (`percent` above the last: the whole weight). A leader whose clock is behind the ramp's (the writer's clock
 * ran ahead, or its own stepped back) re-bases the ramp there instead of stepping it back.
 */
export function rampSinceForPercent(percent: number, nowMs: number, slowStartS: number): number | undefined {
  const stepMs = (slowStartS * 1_000) / RAMP_PERCENTS.length;
  const step = RAMP_PERCENTS.findIndex((p) => p >= percent);
  if (stepMs <= 0 || step < 0) return undefined;
  return nowMs - step * stepMs;
}

/** A member's table weight under its ramp (fractional weights are fine: Maglev uses weight / maxWeight). */
export function rampedWeight(weight: number, ramp: MemberRamp | undefined): number {
  return ramp === undefined ? weight : (weight * ramp.percent) / 100;
}

/**
 * Whether `percent` may be a ramp step in a decided record: an integer 1-99 (not only RAMP_PERCENTS, so a record
 * from a writer with other steps still builds the table it means).
 */
export function isRampPercent(percent: unknown): percent is number {
  return typeof percent === 'number' && Number.isInteger(percent) && percent >= 1 && percent <= 99;
}

/**
 * Members that start taking flows by a fleet change: set `active` from `draining`/`disabled`, or added to a pool
 * that `before` already had (a new pool's members all start at once: nothing to protect them from).
 */
export function startedMembers(before: Fleet, after: Fleet): Set<string> {
  const out = new Set<string>();
  const old = new Map(before.pools.map((p) => [p.name, p]));
  for (const pool of after.pools) {
    const was = old.get(pool.name);
    if (!was || slowStartOf(pool) === 0) continue;
    // One map per pool, not a scan of the earlier pool per member: this runs on every node at every fleet change,
    // and a scan per member was quadratic (100,000 members blocked the event loop for 30 s).
    const priorState = new Map(was.members.map((o) => [o.name, o.state]));
    for (const m of pool.members) {
      if (m.state !== 'active') continue;
      if (priorState.get(m.name) !== 'active') out.add(memberKey(pool.name, m.name));
    }
  }
  return out;
}
