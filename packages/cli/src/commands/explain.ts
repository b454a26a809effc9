/** `l4fleet explain flow SRC:SPORT DST:DPORT/PROTO`: the slot and backend the fleet picks, as every node does. */
import { ConfigError, explainFlow } from '@l4fleet/config';
import type { Command } from 'commander';
import { CliError, EXIT_FAILURE, EXIT_USAGE } from '../io.js';
import { type FleetCommandContext, outputFormat, renderData, withStore } from './context.js';
import { parseVipKeyOrUsage } from './get.js';
import { parseEndpoint } from './maglev.js';

export function registerExplain(program: Command, ctx: FleetCommandContext): void {
  const explain = program.command('explain').description('explain what the fleet does with something');
  explain
    .command('flow')
    .description('the table slot and backend of a flow, and why (same table, seed and hash as the nodes)')
    .argument('<src>', 'SRC:SPORT (IPv6 as [SRC]:SPORT)')
    .argument('<dst>', 'DST:DPORT/PROTO, the VIP')
    .option('-o, --output <format>', 'table | json | yaml', 'table')
    .action(async (srcText: string, dstText: string, opts: { output: string }, cmd: Command) => {
      const format = outputFormat(opts.output);
      const src = parseEndpoint(srcText, 'src');
      const dst = parseVipKeyOrUsage(dstText);
      await withStore(ctx, cmd, async (store) => {
        const { fleet, revision } = await store.getDesired();
        const { decided, ramps } = await store.getDecided();
        const { history } = await store.getTableHistory();
        const flow = { src: src.address, sport: src.port, dst: dst.address, dport: dst.port, protocol: dst.protocol };
        let r: ReturnType<typeof explainFlow>;
        try {
          r = explainFlow(fleet, decided, flow, history, ramps);
        } catch (err) {
          if (!(err instanceof ConfigError)) throw err;
          if (err.code === 'VIP_NOT_FOUND')
            throw new CliError(`${err.message} (revision ${revision})`, EXIT_FAILURE, { cause: err });
          throw new CliError(err.message, EXIT_USAGE, { cause: err });
        }
        if (format !== 'table') return ctx.io.out(renderData(format, { ...r, revision }));
        ctx.io.out(
          [
            `flow:     ${r.flow}`,
            `hash:     ${r.hash}, seed 0x${r.seed.toString(16)}, table ${r.tableSize} slots (checksum ${r.checksum}, revision ${revision})`,
            `slot:     ${r.slot}`,
            `backend:  ${r.backend ? `${r.backend} (${r.address}, pool ${r.pool})` : `(none: ${noBackendWhy(r)})`}`,
            `previous: ${r.previousBackend ? `${r.previousBackend} (${r.previousAddress}, second chance)` : '(none)'}`,
            ...r.why.map((w) => `why:      ${w}`),
          ].join('\n'),
        );
      });
    });
}

/** Why a flow has no backend, most fundamental first (the `why` lines give the detail). */
function noBackendWhy(r: { readonly served: boolean; readonly admitted: boolean }): string {
  if (!r.served) return 'the VIP is disabled: no node serves or announces it';
  if (!r.admitted) return "the source is outside the VIP's sourceRanges; the data plane drops it";
  return 'no member takes new flows; the data plane drops it';
}
