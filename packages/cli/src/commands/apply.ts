/** `l4fleet apply -f FILE [--dry-run]`: validate, show the diff and predicted churn, then write in one txn. */
import { readFileSync } from 'node:fs';
import { diffFleets, type Fleet, parseFleetText, predictChurn } from '@l4fleet/config';
import type { Command } from 'commander';
import { CliError, EXIT_FAILURE } from '../io.js';

import { asCliError, type FleetCommandContext, outputFormat, percent, renderData, withStore } from './context.js';

function readFleetFile(file: string): Fleet {
  let text: string;
  try {
    text = file === '-' ? readFileSync(0, 'utf8') : readFileSync(file, 'utf8');
  } catch (err) {
    throw new CliError(`-f: cannot read ${file}: ${(err as Error).message}`, EXIT_FAILURE, { cause: err });
  }
  try {
    return parseFleetText(text, /\.json$/i.test(file) ? 'json' : undefined);
  } catch (err) {
    throw asCliError(err);
  }
}

export function registerApply(program: Command, ctx: FleetCommandContext): void {
  program
    .command('apply')
    .description('validate a fleet file, show the diff and the predicted churn, and write it (one etcd txn)')
    .requiredOption('-f, --file <file>', 'fleet file (YAML or JSON; - for stdin)')
    .option('--dry-run', 'validate and show what would change, write nothing')
    .option('-o, --output <format>', 'table | json (the plan and result)', 'table')
    .action(async (opts: { file: string; dryRun?: boolean; output: string }, cmd: Command) => {
      const format = outputFormat(opts.output, ['table', 'json']);
      const fleet = readFleetFile(opts.file);
      await withStore(ctx, cmd, async (store) => {
        const current = await store.getDesired();
        const { decided } = await store.getDecided();
        const diff = diffFleets(current.revision === 0 ? undefined : current.fleet, fleet);
        const churn = predictChurn(current.fleet, fleet, decided);
        const plan = { fromRevision: current.revision, changes: diff.changes, churn, dryRun: Boolean(opts.dryRun) };
        const lines: string[] = [];
        if (diff.changes.length === 0 && current.revision !== 0) lines.push('no changes');
        for (const c of diff.changes) {
          const sign = c.kind === 'added' ? '+' : c.kind === 'removed' ? '-' : '~';
          lines.push(`${sign} ${c.subject}${c.detail ? `: ${c.detail}` : ''}`);
        }
        for (const c of churn) {
          lines.push(`churn ${c.vip} (pool ${c.pool}): ${percent(c.fraction)} of slots move (${c.changed}/${c.size})`);
        }
        if (opts.dryRun || (diff.changes.length === 0 && current.revision !== 0)) {
          if (opts.dryRun) lines.push('dry run: nothing written');
          ctx.io.out(format === 'json' ? renderData('json', plan) : lines.join('\n'));
          return;
        }
        const result = await store.apply(fleet, { expectRevision: current.revision });
        lines.push(
          `applied: revision ${result.revision}, generation ${result.generation}, hash seed 0x${result.hashSeed.toString(16)}`,
        );
        ctx.io.out(format === 'json' ? renderData('json', { ...plan, result }) : lines.join('\n'));
      });
    });
}
