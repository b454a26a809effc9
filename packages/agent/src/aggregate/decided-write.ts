/**
 * The aggregator's decided write: the decisions and ramps into etcd, fenced by the leadership. A refusal of some
 * pools' records, the others written, returns as a write (decided-refusal.ts): logged once per distinct refusal,
 * with the wait before the refused records are tried again. Any other failure throws.
 */
import type { MemberRamps, MemberStatus } from '@l4fleet/config';
import type { FleetStore, Leadership } from '@l4fleet/store';
import type { Logger } from 'pino';
import { isPartialRefusal, type Refusals } from './decided-refusal.js';

export interface DecidedWrite {
  readonly store: FleetStore;
  readonly refusals: Refusals;
  readonly log: Logger;
}

/** Writes `next` and `ramps` (and the records of `pools` left empty); undefined: written whole, else the retry wait, ms. */
export async function writeDecided(
  w: DecidedWrite,
  lead: Leadership,
  next: ReadonlyMap<string, MemberStatus>,
  ramps: MemberRamps,
  pools: readonly string[],
): Promise<number | undefined> {
  try {
    await w.store.writeDecided(next, { leadership: lead, ramps, pools });
    if (w.refusals.cleared()) w.log.info({ event: 'decisionWriteRefusalEnded' });
    return undefined;
  } catch (err) {
    if (!isPartialRefusal(err)) throw err;
    const { changed, retryMs } = w.refusals.refused(err);
    if (changed) w.log.warn({ event: 'decisionWriteRefused', code: err.code, key: err.key, err: err.message, retryMs });
    return retryMs;
  }
}
