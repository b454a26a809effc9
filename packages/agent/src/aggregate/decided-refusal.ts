/**
 * A decided write etcd refused in part: a pool's record beyond the store's size bound (~38,000 members) is refused
 * as TOO_LARGE naming `decided/<pool>`, after every other pool was written (store decided.ts). The aggregator takes
 * such a write as written: the other pools' decisions and ramps are in etcd, and treating the whole write as failed
 * would retry it every second for as long as the pool is that big, restart every ramp an operator started at each
 * try (its `started` members were never cleared) and stop the table history of every pool. The refused record
 * cannot shrink by itself, so it is tried again after 1, 2, 4 ... s, at most every REFUSED_RETRY_MAX_MS, and logged
 * once per distinct refusal (the message names the records and their sizes), not at every try. etcd's NOSPACE alarm
 * and "too many requests" are no refusal of a record (the store maps them to NO_SPACE and UNAVAILABLE): nothing was
 * written, and the aggregator retries them as failures, each second.
 */
import { keys, type StoreError } from '@l4fleet/store';

/** The first retry of a refused write, ms; doubled at each refusal with the same message. */
export const REFUSED_RETRY_MS = 1_000;
/** The longest wait between retries of a refused write, ms: 1 min. */
export const REFUSED_RETRY_MAX_MS = 60_000;

/** The store wrote the other pools and refused the record(s) it names (TOO_LARGE with a `decided/` key). */
export function isPartialRefusal(err: unknown): err is StoreError {
  const e = err as Partial<StoreError> | null | undefined;
  return e?.code === 'TOO_LARGE' && typeof e.key === 'string' && e.key.startsWith(keys.decided);
}

export interface Refusals {
  /** A refusal stands: etcd lacks the refused pools' records as the leader decided them. */
  readonly standing: boolean;
  /** Records a refusal: whether it is new or changed (log it), and when to try again. */
  refused(err: StoreError): { changed: boolean; retryMs: number };
  /** A write went through whole: true when a refusal stood until now. */
  cleared(): boolean;
}

export function createRefusals(): Refusals {
  let message: string | undefined;
  let tries = 0;
  return {
    get standing() {
      return message !== undefined;
    },
    refused(err) {
      const changed = err.message !== message;
      tries = changed ? 0 : tries + 1;
      message = err.message;
      return { changed, retryMs: Math.min(REFUSED_RETRY_MS * 2 ** Math.min(tries, 16), REFUSED_RETRY_MAX_MS) };
    },
    cleared() {
      const stood = message !== undefined;
      message = undefined;
      tries = 0;
      return stood;
    },
  };
}
