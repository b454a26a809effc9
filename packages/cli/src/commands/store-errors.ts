/**
 * What the CLI adds to two store errors: how to recover from a desired state that no longer reads (`INVALID_RECORD`
 * on the pointer), and what to do after a write whose outcome is unknown (exit EXIT_OUTCOME_UNKNOWN).
 */
import { keys, StoreError } from '@l4fleet/store';
import { CliError, EXIT_OUTCOME_UNKNOWN } from '../io.js';

/**
 * The line after an `INVALID_RECORD` error on the pointer now: every command that reads the fleet is blocked by it.
 * A past write that does not decode (`rollback R`, `get fleet --revision R`) gets its own line instead (history.ts).
 */
export const RECOVER_HINT =
  'to recover: `l4fleet recover -f FLEET_FILE` shows what would be done, add --yes to replace the broken desired ' +
  'state with that file (README: Troubleshooting)';

/** Extra lines for a store error (none for most). */
export function storeErrorHints(err: StoreError): string[] {
  return err.code === 'INVALID_RECORD' && err.key === keys.pointer ? [RECOVER_HINT] : [];
}

/**
 * A failed apply whose outcome is unknown becomes exit EXIT_OUTCOME_UNKNOWN with how to check; others pass. `dryRun`:
 * the command that shows whether it is live (`l4fleet apply -f FILE --dry-run`).
 */
export function outcomeUnknown(err: unknown, dryRun: string): unknown {
  return withCheck(err, `check: \`${dryRun}\` prints "no changes" if it is live; applying again is safe`);
}

/**
 * The same for a guarded edit (`member`, `vip`): `show` is the listing that shows whether it is live. Running the edit
 * again is safe: it writes it, finds nothing to change, or refuses what is already done (a member added twice).
 */
export function editOutcomeUnknown(err: unknown, show: string): unknown {
  return withCheck(err, `check: \`${show}\` shows whether it is live; running the command again is safe`);
}

function withCheck(err: unknown, check: string): unknown {
  if (!(err instanceof StoreError) || err.code !== 'OUTCOME_UNKNOWN') return err;
  return new CliError([err.message, check], EXIT_OUTCOME_UNKNOWN, { cause: err });
}
