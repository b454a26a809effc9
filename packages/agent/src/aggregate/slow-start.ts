/**
 * The aggregator's slow-start step (@l4fleet/config slow-start.ts): which members ramp, and at which step, written
 * into the decided records with the decisions. A ramp begins when a member of a pool with `slowStartS` starts
 * taking new flows again: decided `up` after `down` (in the same write as that decision, so no node ever builds
 * the member's whole weight first), or set `active` from `draining`/`disabled`, or added to a pool that was already
 * there. It steps on the writer's clock and ends when the member has its whole weight, stops being active, is
 * decided down, or its pool's slow start is turned off. A newly elected aggregator carries on the ramps it reads
 * from etcd; it does not start ramps for what happened before it led.
 *
 * `sinceMs` is a wall-clock time (every leader must read it), so clocks disagree about it: a leader whose clock is
 * behind the one that began the ramp (a new leader behind the old one, or NTP stepping this one back) would compute
 * an earlier step, and the tables would move back and forth (80 % -> 40 % -> 80 %), or past the 5 min bound start
 * the ramp over at 20 %. So a leader never writes a step below the stored one: it re-bases `sinceMs` to where the
 * stored step begins at its own now (rampSinceForPercent), and the ramp goes on up from there. A clock ahead (a new
 * leader ahead of the old one, or stepped forward) is taken as it is: the ramp steps on sooner, or ends early with
 * the member at its whole weight, which only ever moves the tables up.
 */
import {
  type DecidedStatus,
  type Fleet,
  type MemberRamp,
  type MemberRamps,
  memberKey,
  nextRampStepMs,
  type Pool,
  rampPercentAt,
  rampSinceForPercent,
  slowStartOf,
} from '@l4fleet/config';
import { latestBelievedMs } from './clock-bounds.js';

export interface RampStep {
  /** The ramps to store (memberKey -> ramp). */
  readonly ramps: Map<string, MemberRamp>;
  /** `ramps` differs from the ramps given: write it. */
  readonly changed: boolean;
  /** Members whose ramp began in this step (for the log). */
  readonly begun: readonly string[];
  /**
   * Members whose stored `sinceMs` was later than the leader's clock allows (clock-bounds.ts) and was replaced (for
   * the log): capped to that bound, or re-based to keep the stored step; not a time a clock ahead gave it.
   */
  readonly capped: readonly string[];
  /** When the next step of any ramp is due (ms since the epoch): run the step again then. */
  readonly nextStepMs?: number;
}

export interface RampInputs {
  readonly fleet: Fleet;
  /** The decisions before this step's (what the nodes build from now). */
  readonly before: DecidedStatus;
  /** This step's decisions. */
  readonly after: DecidedStatus;
  /** The ramps before this step (as written, or read from etcd). */
  readonly ramps: MemberRamps;
  /** Members that were set active or added since the last step (startedMembers). */
  readonly started: ReadonlySet<string>;
  readonly nowMs: number;
}

/** Whether the member of `pool` may ramp: slow start on, the member active and not decided down. */
function mayRamp(pool: Pool, name: string, key: string, after: DecidedStatus): boolean {
  if (slowStartOf(pool) === 0) return false;
  const member = pool.members.find((m) => m.name === name);
  if (member?.state !== 'active' || member.weight === 0) return false;
  return pool.healthCheck.type === 'none' || after.get(key) !== 'down';
}

export function nextRamps(inp: RampInputs): RampStep {
  const pools = new Map(inp.fleet.pools.map((p) => [p.name, p]));
  const ramps = new Map<string, MemberRamp>();
  const begun: string[] = [];
  const capped: string[] = [];
  const latestMs = latestBelievedMs(inp.nowMs);
  let next: number | undefined;
  /** `storedPercent`: the step etcd holds, which the ramp must not go below (0 for a ramp begun now). */
  const consider = (pool: Pool | undefined, key: string, name: string, stored: number, storedPercent = 0): void => {
    if (!pool || ramps.has(key) || !mayRamp(pool, name, key, inp.after)) return;
    const slowStartS = slowStartOf(pool);
    let sinceMs = stored;
    let percent = rampPercentAt(sinceMs, inp.nowMs, slowStartS);
    if (percent !== undefined && percent < storedPercent) {
      // This clock is behind the ramp's: keep the stored step (see the module's comment).
      const rebasedMs = rampSinceForPercent(storedPercent, inp.nowMs, slowStartS);
      if (rebasedMs === undefined) return; // above the last step: the whole weight, not a lower step
      sinceMs = rebasedMs;
      percent = rampPercentAt(sinceMs, inp.nowMs, slowStartS);
    }
    if (percent === undefined) return;
    ramps.set(key, { percent, sinceMs });
    const at = nextRampStepMs(sinceMs, inp.nowMs, slowStartS);
    if (next === undefined || at < next) next = at;
  };
  for (const pool of inp.fleet.pools) {
    for (const m of pool.members) {
      const key = memberKey(pool.name, m.name);
      const returned =
        pool.healthCheck.type !== 'none' && inp.before.get(key) === 'down' && inp.after.get(key) === 'up';
      if (returned || inp.started.has(key)) {
        const had = ramps.size;
        consider(pool, key, m.name, inp.nowMs);
        if (ramps.size > had) begun.push(key);
      }
    }
  }
  for (const [key, r] of inp.ramps) {
    const i = key.indexOf('/');
    const ahead = r.sinceMs > latestMs;
    consider(pools.get(key.slice(0, i)), key, key.slice(i + 1), ahead ? latestMs : r.sinceMs, r.percent);
    if (ahead && ramps.has(key)) capped.push(key);
  }
  return {
    ramps,
    changed: !sameRamps(inp.ramps, ramps),
    begun,
    capped,
    ...(next === undefined ? {} : { nextStepMs: next }),
  };
}

export function sameRamps(a: MemberRamps, b: MemberRamps): boolean {
  if (a.size !== b.size) return false;
  for (const [k, r] of a) {
    const o = b.get(k);
    if (o?.percent !== r.percent || o.sinceMs !== r.sinceMs) return false;
  }
  return true;
}
