/**
 * The aggregator's slow-start step (@l4fleet/config slow-start.ts): which members ramp, and at which step, written
 * into the decided records with the decisions. A ramp begins when a member of a pool with `slowStartS` starts
 * taking new flows again: decided `up` after `down` (in the same write as that decision, so no node ever builds
 * the member's whole weight first), or set `active` from `draining`/`disabled`, or added to a pool that was already
 * there. It steps on the writer's clock and ends when the member has its whole weight, stops being active, is
 * decided down, or its pool's slow start is turned off. A newly elected aggregator carries on the ramps it reads
 * from etcd; it does not start ramps for what happened before it led.
 *
 * `sinceMs` is a wall-clock time (every leader must read it), and wall clocks disagree and step. Three rules keep the
 * tables from moving back, and a cold member from being handed its whole weight at once:
 * - A ramp this leader began or already held ages on its steady clock (own-stamps.ts): when its wall clock steps
 *   (NTP, either way), `sinceMs` moves with the step and is written back in the new wall time, so the step lasts
 *   as long as it would have (a forward step of 10 min no longer ended a ramp at 20 %).
 * - A leader never writes a step below the stored one: with its clock behind the ramp's (a new leader behind the old
 *   one), it would compute an earlier step, and the tables would move back and forth (80 % -> 40 % -> 80 %), or past
 *   the 5 min bound (clock-bounds.ts) start the ramp over at 20 %. It re-bases `sinceMs` to where the stored step
 *   begins at its own now (rampSinceForPercent), and the ramp goes on up from there.
 * - A ramp it takes over (read from etcd, another leader's) moves at most one step up: with its clock ahead of the
 *   old leader's it would compute a later step, or the ramp's end; whenever its clock puts the ramp past the stored
 *   step, it takes the step after the stored one, begun now (the whole weight only from the last step). Begun now
 *   also when its clock gives exactly that step: kept at the old leader's time, a clock 1 to 2 steps ahead gave the
 *   step after it within seconds. So a failover, however far ahead the new leader's clock, moves a member up by one
 *   step at most, that step lasting slowStartS / 4; with clocks that agree it changes nothing unless a step came due
 *   during the failover, and then lengthens the ramp by less than the failover took (no step is skipped).
 */
import {
  type DecidedStatus,
  type Fleet,
  type Member,
  type MemberRamp,
  type MemberRamps,
  memberKey,
  nextRampStepMs,
  type Pool,
  RAMP_PERCENTS,
  rampPercentAt,
  rampSinceForPercent,
  slowStartOf,
} from '@l4fleet/config';
import { latestBelievedMs } from './clock-bounds.js';
import { type HeldStep, WALL_CLOCK_ONLY } from './own-stamps.js';

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
  /** Members whose ramp was taken over and held to the step after the stored one (for the log). */
  readonly limited: readonly string[];
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
  /**
   * How this leader holds each stored ramp's `sinceMs` (by member key, own-stamps.ts): its own, with the wall
   * clock's step since, or undefined: taken over now. Default: every ramp its own, no step (the wall clock alone).
   */
  readonly held?: HeldStep;
}

/** Whether `member` of `pool` may ramp (undefined: not in the pool): slow start on, active, not decided down. */
function mayRamp(pool: Pool, member: Member | undefined, key: string, after: DecidedStatus): boolean {
  if (slowStartOf(pool) === 0) return false;
  if (member?.state !== 'active' || member.weight === 0) return false;
  return pool.healthCheck.type === 'none' || after.get(key) !== 'down';
}

export function nextRamps(inp: RampInputs): RampStep {
  const pools = new Map(inp.fleet.pools.map((p) => [p.name, p]));
  /**
   * Per pool, its members by name, built at the first stored ramp of the pool. A search of the pool per member made
   * each pass quadratic in the pool: 20,000 members coming back at once took 1.5 s of the leader's event loop, which
   * also runs the health probes and the etcd keep-alives, at every recompute.
   */
  const byName = new Map<string, Map<string, Member>>();
  const memberOf = (pool: Pool, name: string): Member | undefined => {
    let members = byName.get(pool.name);
    if (!members) byName.set(pool.name, (members = new Map(pool.members.map((m) => [m.name, m]))));
    return members.get(name);
  };
  const ramps = new Map<string, MemberRamp>();
  const begun: string[] = [];
  const capped: string[] = [];
  const limited: string[] = [];
  const held = inp.held ?? WALL_CLOCK_ONLY;
  const latestMs = latestBelievedMs(inp.nowMs);
  let next: number | undefined;
  /**
   * `storedPercent`: the step etcd holds, which the ramp must not go below (0 for a ramp begun now); `takenOver`:
   * another leader's ramp, which moves at most one step above it (see the module's comment).
   */
  const consider = (
    pool: Pool,
    key: string,
    member: Member | undefined,
    stored: number,
    storedPercent = 0,
    takenOver = false,
  ): void => {
    if (ramps.has(key) || !mayRamp(pool, member, key, inp.after)) return;
    const slowStartS = slowStartOf(pool);
    let sinceMs = stored;
    let percent = rampPercentAt(sinceMs, inp.nowMs, slowStartS);
    if (percent !== undefined && percent < storedPercent) {
      // This clock is behind the ramp's: keep the stored step.
      const rebasedMs = rampSinceForPercent(storedPercent, inp.nowMs, slowStartS);
      if (rebasedMs === undefined) return; // above the last step: the whole weight, not a lower step
      sinceMs = rebasedMs;
      percent = rampPercentAt(sinceMs, inp.nowMs, slowStartS);
    }
    const stepUp = takenOver ? RAMP_PERCENTS.find((p) => p > storedPercent) : undefined;
    if (stepUp !== undefined && (percent === undefined || percent >= stepUp)) {
      // Any step up of a ramp taken over is begun now (rampSinceForPercent is defined for a step): kept at the old
      // leader's time, a clock one to two steps ahead gave the step after it within seconds. Logged only when this
      // clock gave more than that one step.
      if (percent !== stepUp) limited.push(key);
      sinceMs = rampSinceForPercent(stepUp, inp.nowMs, slowStartS) as number;
      percent = stepUp;
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
        consider(pool, key, m, inp.nowMs);
        if (ramps.size > had) begun.push(key);
      }
    }
  }
  for (const [key, r] of inp.ramps) {
    const i = key.indexOf('/');
    const stepMs = held(key, r.sinceMs);
    // Its own ramp moves with the wall clock's step: it goes on by steady time (written back in the new wall time).
    const sinceMs = Math.max(0, r.sinceMs + (stepMs ?? 0));
    const ahead = sinceMs > latestMs;
    const pool = pools.get(key.slice(0, i));
    if (!pool) continue; // its pool is gone: the ramp ends
    consider(pool, key, memberOf(pool, key.slice(i + 1)), ahead ? latestMs : sinceMs, r.percent, stepMs === undefined);
    if (ahead && ramps.has(key)) capped.push(key);
  }
  return {
    ramps,
    changed: !sameRamps(inp.ramps, ramps),
    begun,
    capped,
    limited,
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

/** Each ramp that began, stepped or ended (100: the whole weight), for the log (`memberSlowStart`). */
export function rampChanges(
  before: MemberRamps,
  after: MemberRamps,
): { member: string; percent: number; sinceMs?: number }[] {
  const out: { member: string; percent: number; sinceMs?: number }[] = [];
  for (const [member, r] of after) {
    const was = before.get(member);
    if (was?.percent !== r.percent || was.sinceMs !== r.sinceMs) out.push({ member, ...r });
  }
  for (const member of before.keys()) if (!after.has(member)) out.push({ member, percent: 100 });
  return out;
}
