/**
 * Bounds on the times the aggregator reads back from etcd (ramp `sinceMs`, earlier tables' `untilMs`). They were
 * stamped by whichever node led then, on its clock: a former leader whose clock ran ahead leaves times in the
 * future, and believed as they are, they would hold a member at its first slow-start step, or keep a table (and
 * its removed members as previous owners) for as long as the clock was ahead. The leader takes no time later than
 * its own now plus FUTURE_SKEW_MS (clocks of a fleet run by NTP are far closer than that) and arms no timer longer
 * than Node can (a longer delay is taken as 1 ms: the timer would fire for ever).
 */

/** How far ahead of the leader's clock a stored time may be and still be kept as it is: 5 min. */
export const FUTURE_SKEW_MS = 5 * 60_000;

/** Node's setTimeout limit (a signed 32-bit ms count, ~24.8 days). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** The latest time the leader believes at `nowMs`. */
export const latestBelievedMs = (nowMs: number): number => nowMs + FUTURE_SKEW_MS;

/** The delay of a timer due at `atMs` (run just after it), clamped to what setTimeout can hold. */
export function timerDelayMs(atMs: number, nowMs: number): number {
  return Math.min(MAX_TIMER_MS, Math.max(0, atMs - nowMs) + 1);
}
