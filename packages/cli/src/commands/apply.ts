/** `l4fleet apply -f FILE [--dry-run]`: validate, show the diff and predicted churn, then write in one txn. */
import {
  type AnnouncementChange,
  announcementChanges,
  capProblems,
  type DecidedStatus,
  diffFleets,
  directReturnProblems,
  type Fleet,
  type FleetChange,
  formatProblem,
  MAX_FLEET_BYTES,
  parseFleetText,
  predictChurn,
} from '@l4fleet/config';
import type { FleetStore } from '@l4fleet/store';
import type { Command } from 'commander';
import { readBounded } from '../bounded-read.js';
import { CliError, EXIT_FAILURE } from '../io.js';
import { onceOption } from '../options.js';
import { type ApplyGuardFlags, applyGuards } from './apply-guards.js';
import {
  asCliError,
  type ConnectionFlags,
  type FleetCommandContext,
  outputFormat,
  percent,
  renderData,
  withStore,
  writer,
} from './context.js';
import { ineffectiveNotes } from './notes.js';
import { outcomeUnknown } from './store-errors.js';

/** Reads and validates the file before etcd is contacted; at most MAX_FLEET_BYTES are ever read. */
export function readFleetFile(file: string): Fleet {
  let read: ReturnType<typeof readBounded>;
  try {
    read = readBounded(file, MAX_FLEET_BYTES);
  } catch (err) {
    throw new CliError(`-f: cannot read ${file}: ${(err as Error).message}`, EXIT_FAILURE, { cause: err });
  }
  if ('tooLarge' in read) {
    const size = read.exact ? `is ${read.tooLarge.toLocaleString('en-US')} bytes` : 'does not end within the limit';
    throw new CliError(
      `-f: ${file} ${size}, more than the limit of ${MAX_FLEET_BYTES.toLocaleString('en-US')} bytes (MAX_FLEET_BYTES); nothing read past it`,
      EXIT_FAILURE,
    );
  }
  try {
    return parseFleetText(read.text, /\.json$/i.test(file) ? 'json' : undefined);
  } catch (err) {
    throw asCliError(err);
  }
}

type ApplyOptions = { file: string; dryRun?: boolean; output: string; proxyOnly?: boolean } & ApplyGuardFlags;

/** What applyFleet() takes besides the fleet: apply's flags (and rollback's, the same ones). */
export type ApplyFleetOptions = { dryRun?: boolean; output: string; proxyOnly?: boolean } & ApplyGuardFlags;

const PROXY_HINT =
  'these hold for the nftables and eBPF data planes (direct server return); a fleet served only by the proxy data plane may pass --proxy-only';

/**
 * Checks `fleet` as every node will, shows the diff, the guards and the predicted churn against the stored fleet, and
 * writes it guarded by the revision it read (nothing with --dry-run, or when nothing changes). `dryRunCommand`: the
 * command that shows whether a write whose outcome is unknown is live. Shared by `apply` and `rollback`.
 */
export async function applyFleet(
  ctx: FleetCommandContext,
  cmd: Command,
  fleet: Fleet,
  opts: ApplyFleetOptions,
  dryRunCommand: string,
): Promise<void> {
  const format = outputFormat(opts.output, ['table', 'json']);
  // The kernel data planes refuse these (direct server return); say it here, before etcd, not on every node. Capped
  // as parseFleet's problems are (one per loopback member otherwise), so the hint after them stays in sight.
  const dsr = opts.proxyOnly ? [] : directReturnProblems(fleet);
  if (dsr.length > 0) throw new CliError([...capProblems(dsr).map(formatProblem), PROXY_HINT], EXIT_FAILURE);
  await withStore(ctx, cmd, async (store) => {
    const current = await store.getDesired();
    const { decided, ramps } = await store.getDecided();
    const diff = diffFleets(current.revision === 0 ? undefined : current.fleet, fleet);
    const churn = predictChurn(current.fleet, fleet, decided);
    const announcements = announcementChanges(
      current.revision === 0 ? undefined : current.fleet,
      fleet,
      decided,
      ramps,
    );
    const prefix = (cmd.optsWithGlobals() as ConnectionFlags).prefix ?? '/l4fleet';
    const guards = applyGuards(current, fleet, prefix, opts);
    const blocked = guards.filter((g) => !g.allowed).map((g) => `${g.message}; pass ${g.flag} to do it`);
    if (blocked.length > 0 && !opts.dryRun) throw new CliError(blocked, EXIT_FAILURE);
    const notes = ineffectiveNotes(fleet);
    const plan = {
      fromRevision: current.revision,
      changes: diff.changes,
      churn,
      announcements,
      guards,
      notes,
      dryRun: Boolean(opts.dryRun),
    };
    const lines: string[] = [];
    for (const g of guards) lines.push(g.allowed ? `note (${g.flag}): ${g.message}` : `needs ${g.flag}: ${g.message}`);
    if (diff.changes.length === 0 && current.revision !== 0) lines.push('no changes');
    for (const c of diff.changes) lines.push(changeLine(c));
    for (const c of churn) {
      lines.push(`churn ${c.vip} (pool ${c.pool}): ${percent(c.fraction)} of slots move (${c.changed}/${c.size})`);
    }
    // What the write does to the routes, under the members' decided status now.
    for (const a of announcements) lines.push(announcementLine(a));
    for (const n of notes) lines.push(`note: ${n}`);
    if (opts.dryRun || (diff.changes.length === 0 && current.revision !== 0)) {
      if (opts.dryRun) lines.push('dry run: nothing written');
      ctx.io.out(format === 'json' ? renderData('json', plan) : lines.join('\n'));
      return;
    }
    const result = await store
      .apply(fleet, { expectRevision: current.revision, by: writer(cmd) })
      .catch((err: unknown) => Promise.reject(outcomeUnknown(err, dryRunCommand)));
    lines.push(
      `applied: revision ${result.revision}, generation ${result.generation}, hash seed 0x${result.hashSeed.toString(16)}`,
    );
    ctx.io.out(format === 'json' ? renderData('json', { ...plan, result }) : lines.join('\n'));
  });
}

/** One announcement change as `apply` and the member and VIP edits print it. */
export function announcementLine(a: AnnouncementChange): string {
  return a.announced ? `announces ${a.vip} again` : `withdraws ${a.vip} on every node: ${a.reason}`;
}

/**
 * What a member or VIP edit does to the routes (announcementChanges), under the decided status the edit read and the
 * slow-start ramps read now: the same lines `apply` prints, so disabling a pool's last member says it withdraws.
 */
export async function editAnnouncementLines(
  store: FleetStore,
  result: { readonly before: Fleet; readonly after: Fleet; readonly decided: DecidedStatus },
): Promise<string[]> {
  const { ramps } = await store.getDecided();
  return announcementChanges(result.before, result.after, result.decided, ramps).map(announcementLine);
}

/** One change as `apply` prints it: `+ vip ...`, `- member web/be3`, `~ member web/be1: weight 1 -> 2`. */
export function changeLine(c: FleetChange): string {
  const sign = c.kind === 'added' ? '+' : c.kind === 'removed' ? '-' : '~';
  return `${sign} ${c.subject}${c.detail ? `: ${c.detail}` : ''}`;
}

export function registerApply(program: Command, ctx: FleetCommandContext): void {
  program
    .command('apply')
    .description('validate a fleet file, show the diff and the predicted churn, and write it (one etcd txn)')
    .requiredOption('-f, --file <file>', 'fleet file (YAML or JSON; - for stdin)', onceOption('-f, --file'))
    .option('--dry-run', 'validate and show what would change, write nothing')
    .option('-o, --output <format>', 'table | json (the plan and result)', 'table')
    .option(
      '--new-fleet',
      'allow creating a fleet where the prefix has none (a new hash seed unless the file sets one)',
    )
    .option('--change-seed', "allow replacing the stored hash seed with the file's (every flow moves)")
    .option('--remove-all-vips', 'allow a file with no VIPs over a fleet that has some (every VIP is withdrawn)')
    .option('--proxy-only', 'every node runs the proxy data plane: members may be on other ports or loopback')
    .action(async (opts: ApplyOptions, cmd: Command) => {
      outputFormat(opts.output, ['table', 'json']);
      const fleet = readFleetFile(opts.file);
      await applyFleet(ctx, cmd, fleet, opts, `l4fleet apply -f ${opts.file} --dry-run`);
    });
}
