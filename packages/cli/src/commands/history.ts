/**
 * `l4fleet history`: the writes of the desired state that etcd still holds, newest first, each with what it changed;
 * `l4fleet get fleet --revision R` prints one of them as a fleet file; `l4fleet rollback R` applies it again, through
 * everything `apply` does (the diff, the guards, the churn, the revision guard). The history is etcd's own (design
 * note 0002 "History of the desired state"): as long as etcd's compaction leaves it, nothing more is stored.
 */
import type { Fleet } from '@l4fleet/config';
import {
  type DesiredChange,
  type DesiredState,
  desiredChanges,
  type FleetStore,
  MAX_DESIRED_HISTORY,
  StoreError,
} from '@l4fleet/store';
import type { Command } from 'commander';
import { CliError, EXIT_FAILURE } from '../io.js';
import { integerOption } from '../options.js';
import { renderTable } from '../table.js';
import { type ApplyFleetOptions, applyFleet, changeLine } from './apply.js';
import { type FleetCommandContext, outputFormat, renderData, withStore } from './context.js';

/** Writes listed by default. */
export const DEFAULT_HISTORY_LIMIT = 10;
/** Changes named in a history row; the rest are counted. */
const CHANGES_SHOWN = 2;

function summary(row: DesiredChange): string {
  if (row.invalid !== undefined) return `INVALID: ${row.invalid}`;
  if (row.changes === null) return row.note ? `(${row.note})` : '(changes unknown: the write before it does not read)';
  if (row.changes.length === 0) return 'no changes';
  const named = row.changes.slice(0, CHANGES_SHOWN).map(changeLine).join('; ');
  const rest = row.changes.length - CHANGES_SHOWN;
  return rest > 0 ? `${named}; ... (${rest} more)` : named;
}

/** The table's BY: the writer without the command it ran (the changes say what it did; JSON keeps all of it). */
function writerName(row: DesiredChange): string {
  return row.appliedBy?.replace(/ \(l4fleet [^)]*\)$/, '') || '-';
}

type RollbackOptions = ApplyFleetOptions;

/** `history` while the pointer is deleted: the fleet's records say a fleet was applied, so not "nothing ever was". */
const DELETED_NOW = [
  "no writes listed: desired/current was deleted outside l4fleet (the fleet's decided or history records remain)",
  'earlier writes may still be readable with `l4fleet get fleet --revision R`; `l4fleet recover -f FLEET_FILE` replaces it',
];

export function registerHistory(program: Command, ctx: FleetCommandContext): void {
  program
    .command('history')
    .description("list the fleet's writes that etcd still holds, newest first, with what each changed")
    .option('--limit <n>', `writes listed (1-${MAX_DESIRED_HISTORY})`, String(DEFAULT_HISTORY_LIMIT))
    .option('-o, --output <format>', 'table | json | yaml', 'table')
    .action(async (opts: { limit: string; output: string }, cmd: Command) => {
      const format = outputFormat(opts.output);
      const limit = integerOption(opts.limit, '--limit', 1, MAX_DESIRED_HISTORY);
      await withStore(ctx, cmd, async (store) => {
        const { revisions: rows, more, compacted, pointerDeleted } = await desiredChanges(store, limit);
        if (format !== 'table') {
          const deleted = pointerDeleted ? { pointerDeleted } : {};
          return ctx.io.out(renderData(format, { revisions: rows, more, compacted, ...deleted }));
        }
        if (rows.length === 0 && pointerDeleted) return ctx.io.out(DELETED_NOW.join('\n'));
        if (rows.length === 0) return ctx.io.out('no writes: nothing was ever applied under this prefix');
        const table = renderTable(
          ['REVISION', 'APPLIED (UTC)', 'BY', 'CHANGES'],
          rows.map((r) => [`${r.revision}${r.current ? '*' : ''}`, r.appliedAt || '-', writerName(r), summary(r)]),
        );
        const tail = [
          '* the desired state now. `l4fleet get fleet --revision R` prints a write as a fleet file; `l4fleet rollback R` applies it again',
          ...(more
            ? [
                limit >= MAX_DESIRED_HISTORY
                  ? `more writes before these, past the most one listing shows (${MAX_DESIRED_HISTORY})`
                  : `more writes before these: --limit ${Math.min(limit * 2, MAX_DESIRED_HISTORY)}`,
              ]
            : []),
          ...(compacted ? ['earlier writes were compacted by etcd (its history ends there)'] : []),
        ];
        return ctx.io.out([table, '', ...tail].join('\n'));
      });
    });

  program
    .command('rollback')
    .description('apply the fleet of an earlier write again (`l4fleet history` lists them), as `apply` would')
    .argument('<revision>', 'a revision `l4fleet history` lists')
    .option('--dry-run', 'show what would change, write nothing')
    .option('-o, --output <format>', 'table | json (the plan and result)', 'table')
    .option('--change-seed', "allow the earlier write's hash seed where the stored one differs (every flow moves)")
    .option('--remove-all-vips', 'allow an earlier write without VIPs over a fleet that has some')
    .option('--proxy-only', 'every node runs the proxy data plane: members may be on other ports or loopback')
    .action(async (revisionText: string, opts: RollbackOptions, cmd: Command) => {
      outputFormat(opts.output, ['table', 'json']);
      const revision = integerOption(revisionText, 'revision', 1, Number.MAX_SAFE_INTEGER);
      const earlier = await withStore(ctx, cmd, (store) => pastWrite(store, revision));
      await applyFleet(ctx, cmd, earlier.fleet, opts, `l4fleet rollback ${revision} --dry-run`);
    });
}

/** `l4fleet get fleet [--revision R]`: the fleet now, or as a write left it, as a fleet file `apply -f` takes. */
export async function fleetAt(store: FleetStore, revision: number | undefined): Promise<Fleet> {
  return revision === undefined ? (await store.getDesired()).fleet : (await pastWrite(store, revision)).fleet;
}

/**
 * The write at `revision`. One that does not decode is that write's problem, not the state's now: the way out is
 * another write, not `recover` (the hint a read of the current state gets, store-errors.ts).
 */
async function pastWrite(store: FleetStore, revision: number): Promise<DesiredState> {
  try {
    return await store.getDesiredAt(revision);
  } catch (err) {
    if (!(err instanceof StoreError) || err.code !== 'INVALID_RECORD') throw err;
    throw new CliError([err.message, 'that write does not decode; pick another from `l4fleet history`'], EXIT_FAILURE, {
      cause: err,
    });
  }
}
