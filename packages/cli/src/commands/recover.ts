/**
 * `l4fleet recover -f FILE --yes`: replaces a desired state that no longer reads (a pointer under
 * `<prefix>/v1/desired/current` that does not decode, one naming missing or bad chunks, or one deleted by hand while
 * the fleet's decided or history records remain) with the fleet in FILE.
 * `apply` cannot do it: it reads the current state first (for the diff and its guards) and a broken one blocks it.
 * The seed is the file's, else the one the nodes still serve (the last write that reads, from etcd's history), else,
 * when no such write is left, the broken pointer's when that field is still readable, else new; a file whose seed
 * differs from the one the nodes serve needs --change-seed, as apply does (recover-seed.ts). The write is guarded by the broken pointer's revision, and refused when the state reads fine
 * (then: apply).
 * docs/design/0002-etcd-layout.md, "Recovering a corrupt pointer"; README Troubleshooting.
 */
import { capProblems, directReturnProblems, formatProblem } from '@l4fleet/config';
import { StoreError } from '@l4fleet/store';
import type { Command } from 'commander';
import { CliError, EXIT_FAILURE } from '../io.js';
import { onceOption } from '../options.js';
import { readFleetFile } from './apply.js';
import { type FleetCommandContext, outputFormat, renderData, withStore, writer } from './context.js';
import { lastReadableSeed, seedChange, seedLine, seedToStore } from './recover-seed.js';
import { outcomeUnknown } from './store-errors.js';

const SEED_SOURCE = {
  served: 'the one the nodes serve; the file sets none',
  fleet: 'from the file',
  stored: 'kept',
  salvaged: 'kept from the broken pointer',
  new: 'NEW: the broken pointer had none readable and the file sets none, so every flow moves',
} as const;

// The same words apply prints (apply.ts): recover writes a fleet every node then serves, so the same check applies.
const PROXY_HINT =
  'these hold for the nftables and eBPF data planes (direct server return); a fleet served only by the proxy data plane may pass --proxy-only';

interface RecoverOptions {
  readonly file: string;
  readonly yes?: boolean;
  readonly output: string;
  readonly proxyOnly?: boolean;
  readonly changeSeed?: boolean;
}

export function registerRecover(program: Command, ctx: FleetCommandContext): void {
  program
    .command('recover')
    .description('replace a desired state that no longer reads (corrupt pointer or chunks) with a fleet file')
    .requiredOption(
      '-f, --file <file>',
      'fleet file to store instead (YAML or JSON; - for stdin)',
      onceOption('-f, --file'),
    )
    .option('--yes', 'really replace it (without: show the problem and what would be done)')
    .option('-o, --output <format>', 'table | json', 'table')
    .option('--proxy-only', 'every node runs the proxy data plane: members may be on other ports or loopback')
    .option(
      '--change-seed',
      "allow the file's hash seed where the fleet the nodes serve has another (every flow moves)",
    )
    .action(async (opts: RecoverOptions, cmd: Command) => {
      const format = outputFormat(opts.output, ['table', 'json']);
      const fleet = readFleetFile(opts.file);
      // The kernel data planes refuse these (direct server return); checked before etcd as apply does, so a fleet
      // every nftables/eBPF node refuses is found here, not on each node after the write; capped as apply does.
      const dsr = opts.proxyOnly ? [] : directReturnProblems(fleet);
      if (dsr.length > 0) throw new CliError([...capProblems(dsr).map(formatProblem), PROXY_HINT], EXIT_FAILURE);
      await withStore(ctx, cmd, async (store) => {
        const problem = await store.getDesired().then(
          () => undefined,
          (err: unknown) => {
            if (err instanceof StoreError && err.code === 'INVALID_RECORD') return err;
            throw err;
          },
        );
        if (!problem) {
          throw new CliError('recover: the desired state reads fine; nothing to recover (use apply)', EXIT_FAILURE);
        }
        const served = await lastReadableSeed(store);
        const change = seedChange(served, fleet);
        const would =
          `recover: would replace it with ${opts.file} (${fleet.vips.length} VIPs, ${fleet.pools.length} pools); ` +
          'pass --yes to do it';
        if (!opts.yes && format === 'json') {
          // The preview on stdout for a script (done: false); the exit stays 1 with the reason on stderr.
          ctx.io.out(
            renderData('json', {
              done: false,
              problem: problem.message,
              lastReadable: served ?? null,
              seed: seedLine(served, fleet),
              seedChange: change ?? null,
              needsChangeSeed: change !== undefined && !opts.changeSeed,
              wouldReplaceWith: { file: opts.file, vips: fleet.vips.length, pools: fleet.pools.length },
            }),
          );
          throw new CliError(would, EXIT_FAILURE);
        }
        if (!opts.yes) {
          throw new CliError(
            [
              problem.message,
              seedLine(served, fleet),
              ...(change === undefined
                ? []
                : [`${opts.changeSeed ? 'note (--change-seed)' : 'needs --change-seed'}: ${change}`]),
              would,
            ],
            EXIT_FAILURE,
          );
        }
        if (change !== undefined && !opts.changeSeed) {
          throw new CliError(`recover: ${change}; pass --change-seed to do it`, EXIT_FAILURE);
        }
        const stored = seedToStore(served, fleet);
        const result = await store
          .apply(stored, { recoverInvalid: true, by: writer(cmd) })
          .catch((err: unknown) => Promise.reject(outcomeUnknown(err, `l4fleet apply -f ${opts.file} --dry-run`)));
        const seedSource = stored === fleet ? (result.seedSource ?? 'stored') : 'served';
        const seed = `hash seed 0x${result.hashSeed.toString(16)} (${SEED_SOURCE[seedSource]})`;
        // A stored seed other than the served one (--change-seed) is said after the fact too; so is a file without a
        // seed when no write that reads is left, since the seed stored then (the broken pointer's, or new) may not be
        // the one the nodes serve.
        const notes =
          served !== undefined && served.hashSeed !== result.hashSeed
            ? [
                `the nodes served hash seed 0x${served.hashSeed.toString(16)} (revision ${served.revision}): ` +
                  'nearly every flow moves to another backend',
              ]
            : served === undefined && fleet.hashSeed === undefined
              ? [
                  `the seed the nodes serve could not be read (no write in etcd's history reads whole): ` +
                    'flows move unless it was this one',
                ]
              : [];
        // In JSON, result.seedSource is this one too: the store's said 'fleet' when the fleet it was handed carried the
        // served seed (seedToStore), beside a top-level 'served'.
        ctx.io.out(
          format === 'json'
            ? renderData('json', {
                done: true,
                replaced: problem.message,
                lastReadable: served ?? null,
                seedSource,
                result: { ...result, seedSource },
                notes,
              })
            : [
                `replaced: ${problem.message}`,
                `recovered: revision ${result.revision}, generation ${result.generation}, ${seed}`,
                ...notes.map((n) => `note: ${n}`),
              ].join('\n'),
        );
      });
    });
}
