/**
 * The errors the desired state's apply and watch report: what went wrong, with the key, and what to do about it.
 */
import { StoreError } from './errors.js';
import { keys } from './layout.js';

/** The pointer is gone but the fleet was served (`left`: a record that says so, when one was read). */
export function deletedByHand(left: string | undefined): StoreError {
  const evidence = left === undefined ? '' : ` (${left} remains from the fleet it named)`;
  return new StoreError(
    'INVALID_RECORD',
    `${keys.pointer}: deleted outside l4fleet${evidence}; keeping the last good fleet; ` +
      'replace it with `l4fleet recover -f FILE --yes`',
    { key: keys.pointer },
  );
}

/** A desired revision a watcher gave up on: its error's code, the revision and what keeps serving. */
export function skipped(e: StoreError, revision: number, generation: string, attempts: number): StoreError {
  return new StoreError(
    e.code,
    `${e.message}; desired revision ${revision} (generation ${generation}) skipped after ${attempts} ` +
      'attempts: the last good fleet keeps serving until a later apply',
    { cause: e, key: keys.pointer },
  );
}

/** An apply whose pointer switch was sent and not answered: what may have happened and how to tell. */
export function outcomeUnknown(
  generation: string,
  sha256: string,
  fromRevision: number,
  cause: StoreError,
): StoreError {
  return new StoreError(
    'OUTCOME_UNKNOWN',
    `apply: outcome unknown: the switch of ${keys.pointer} to generation ${generation} (sha256 ${sha256}) was sent ` +
      `and etcd did not answer (${cause.message}); the fleet may or may not be live, now or once etcd resumes. ` +
      `It is live if ${keys.pointer} names generation ${generation} (its revision is then above ${fromRevision}); ` +
      'applying the same fleet again is safe (the revision guard refuses a stale switch)',
    { cause, key: keys.pointer },
  );
}
