/**
 * The aggregator's warnings of one pass's capped and limited ramps (slow-start.ts): one line per event and pool
 * (count, first 5 members), not per member, since a new leader takes over a 20,000-member pool at once.
 */
import type { MemberRamps } from '@l4fleet/config';
import type { Logger } from 'pino';
import type { RampStep } from './slow-start.js';

/** Logs `ramp`'s capped and limited members; `currentRamps`: the ramps before the pass, `nowMs` its time. */
export function warnRamps(
  log: Logger,
  ramp: Pick<RampStep, 'capped' | 'limited'>,
  currentRamps: MemberRamps,
  nowMs: number,
): void {
  for (const event of ['rampTimeCapped', 'rampTakeoverLimited'] as const) {
    const byPool = new Map<string, string[]>();
    for (const k of event === 'rampTimeCapped' ? ramp.capped : ramp.limited) {
      const pool = k.slice(0, k.indexOf('/'));
      if (!byPool.has(pool)) byPool.set(pool, []);
      byPool.get(pool)?.push(k);
    }
    for (const [pool, keys] of byPool) {
      const sinceMs = currentRamps.get(keys[0] as string)?.sinceMs; // the first one's
      log.warn({ event, pool, count: keys.length, members: keys.slice(0, 5), sinceMs, nowMs });
    }
  }
}
