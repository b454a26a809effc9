/** `l4fleet explain flow SRC:SPORT DST:DPORT/PROTO`: the slot and backend the fleet picks, as every node does. */
import { buildVipTable, endpointText, type Protocol, vipKey } from '@l4fleet/config';
import { MaglevError, NO_BACKEND, slotOf } from '@l4fleet/maglev';
import type { Command } from 'commander';
import { CliError, EXIT_FAILURE, EXIT_USAGE } from '../io.js';
import { type FleetCommandContext, outputFormat, renderData, withStore } from './context.js';
import { parseVipKeyOrUsage } from './get.js';
import { parseEndpoint } from './maglev.js';

export function registerExplain(program: Command, ctx: FleetCommandContext): void {
  const explain = program.command('explain').description('explain what the fleet does with something');
  explain
    .command('flow')
    .description('the table slot and backend of a flow (same table, seed and hash as the nodes)')
    .argument('<src>', 'SRC:SPORT (IPv6 as [SRC]:SPORT)')
    .argument('<dst>', 'DST:DPORT/PROTO, the VIP')
    .option('-o, --output <format>', 'table | json | yaml', 'table')
    .action(async (srcText: string, dstText: string, opts: { output: string }, cmd: Command) => {
      const format = outputFormat(opts.output);
      const src = parseEndpoint(srcText, 'src');
      const dst = parseVipKeyOrUsage(dstText);
      await withStore(ctx, cmd, async (store) => {
        const { fleet, revision } = await store.getDesired();
        const key = vipKey(dst);
        const vip = fleet.vips.find((v) => vipKey(v) === key);
        if (!vip) throw new CliError(`vip ${key}: not in the fleet (revision ${revision})`, EXIT_FAILURE);
        const { decided } = await store.getDecided();
        const table = buildVipTable(fleet, vip, decided);
        let slot: number;
        try {
          const flow = {
            src: src.address,
            sport: src.port,
            dst: vip.address,
            dport: vip.port,
            protocol: vip.protocol as Protocol,
          };
          slot = slotOf(flow, vip.tableSize, table.seed, vip.hash);
        } catch (err) {
          if (err instanceof MaglevError) throw new CliError(err.message, EXIT_USAGE, { cause: err });
          throw err;
        }
        const index = table.slots[slot] as number;
        const member = index === NO_BACKEND ? undefined : table.backends[index];
        const data = {
          flow: `${srcText} -> ${key}`,
          vip: key,
          pool: vip.pool,
          hash: vip.hash,
          seed: table.seed,
          tableSize: vip.tableSize,
          slot,
          backend: member?.name ?? null,
          address: member ? endpointText(member.address, member.port) : null,
          checksum: table.checksum,
          revision,
        };
        if (format !== 'table') return ctx.io.out(renderData(format, data));
        ctx.io.out(
          [
            `flow:     ${data.flow}`,
            `hash:     ${vip.hash}, seed 0x${table.seed.toString(16)}, table ${vip.tableSize} slots (checksum ${table.checksum}, revision ${revision})`,
            `slot:     ${slot}`,
            `backend:  ${member ? `${member.name} (${data.address}, pool ${vip.pool})` : '(none: no member takes new flows; the data plane drops it)'}`,
          ].join('\n'),
        );
      });
    });
}
