/** `l4fleet maglev ...`: the hashing library from the command line, no fleet needed. */

import { MAX_MEMBER_WEIGHT } from '@l4fleet/config';
import {
  buildNamedTable,
  DEFAULT_TABLE_SIZE,
  type HashMode,
  MAX_TABLE_SIZE,
  MaglevError,
  type Protocol,
  slotOf,
  tableStats,
} from '@l4fleet/maglev';
import type { Command } from 'commander';
import { CliError, type CliIo, EXIT_USAGE } from '../io.js';
import { integerOption, onceOption } from '../options.js';
import { outputFormat } from './context.js';

/**
 * `-b a,b=2,c`. An empty list or item is refused, not skipped: `-b ''` built a table of no backends and `-b a,,b` one
 * of two, both with exit 0, and a script's unset variable (`-b "$A,$B"`) went unnoticed.
 */
function parseBackends(list: string): { name: string; weight?: number }[] {
  if (list === '') throw new CliError('-b: "" lists no backends', EXIT_USAGE);
  return list.split(',').map((item, i) => {
    if (item === '') throw new CliError(`-b: item ${i + 1} of ${JSON.stringify(list)} is empty`, EXIT_USAGE);
    const [name, weight, ...rest] = item.split('=');
    if (rest.length > 0) throw new CliError(`backends: ${JSON.stringify(item)} is not NAME[=WEIGHT]`, EXIT_USAGE);
    if (name === '') throw new CliError(`-b: item ${i + 1} of ${JSON.stringify(list)} has no name`, EXIT_USAGE);
    if (weight === undefined) return { name: name as string };
    return { name: name as string, weight: integerOption(weight, `backends: ${name} weight`, 0, MAX_MEMBER_WEIGHT) };
  });
}

/**
 * Parses `ADDR:PORT`, with IPv6 as `[ADDR]:PORT`; the port `minPort`-65535 (a usage error naming the field otherwise:
 * source-ip hashing never looks at the port, so nothing later would refuse `:99999`). A flow's port may be 0 (the
 * hash takes it); a member's may not (the fleet parser's rule), so member endpoints pass 1.
 */
export function parseEndpoint(text: string, field: string, minPort: 0 | 1 = 0): { address: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:]+):(\d+)$/.exec(text);
  if (!m) throw new CliError(`${field}: ${JSON.stringify(text)} is not ADDR:PORT (IPv6 as [ADDR]:PORT)`, EXIT_USAGE);
  const port = Number(m[2]);
  if (port < minPort || port > 65_535) {
    throw new CliError(
      `${field}: port ${m[2]} of ${JSON.stringify(text)} is not a port (${minPort}-65535)`,
      EXIT_USAGE,
    );
  }
  return { address: m[1] as string, port };
}

function rethrow(err: unknown): never {
  if (err instanceof MaglevError) throw new CliError(err.message, EXIT_USAGE, { cause: err });
  throw err;
}

export function registerMaglev(program: Command, io: CliIo): void {
  const maglev = program.command('maglev').description('Maglev lookup tables and the flow hash (no fleet needed)');

  maglev
    .command('table')
    .description('build a table and show slots per backend')
    .requiredOption(
      '-b, --backends <list>',
      'comma-separated NAME[=WEIGHT] list, e.g. a,b=2,c',
      onceOption('-b, --backends'),
    )
    .option('-s, --size <prime>', 'table size M (prime)', String(DEFAULT_TABLE_SIZE))
    .option('-o, --output <format>', 'table | json', 'table')
    .action((opts: { backends: string; size: string; output: string }) => {
      const format = outputFormat(opts.output, ['table', 'json']);
      try {
        const table = buildNamedTable(
          parseBackends(opts.backends),
          integerOption(opts.size, '--size', 2, MAX_TABLE_SIZE),
        );
        const stats = tableStats(table);
        if (format === 'json') {
          io.out(JSON.stringify(stats, null, 2));
          return;
        }
        const rows = Object.entries(stats.slotsPerBackend).map(
          ([name, n]) => `${name.padEnd(24)} ${String(n).padStart(8)}  ${((100 * n) / stats.size).toFixed(2)}%`,
        );
        io.out(
          [`${'BACKEND'.padEnd(24)} ${'SLOTS'.padStart(8)}  SHARE`, ...rows, `spread (max-min): ${stats.spread}`].join(
            '\n',
          ),
        );
      } catch (err) {
        rethrow(err);
      }
    });

  maglev
    .command('slot')
    .description("the slot the kernel's nftables jhash picks for a flow")
    .argument('<src>', 'SRC:SPORT')
    .argument('<dst>', 'DST:DPORT[/tcp|udp]')
    .option('-s, --size <prime>', 'table size M (prime)', String(DEFAULT_TABLE_SIZE))
    .option('--seed <n>', 'fleet hash seed (decimal or 0x hex)', '0')
    .option('--hash <mode>', '5-tuple | source-ip', '5-tuple')
    .action((srcText: string, dstText: string, opts: { size: string; seed: string; hash: string }) => {
      try {
        const [dstEndpoint, proto = 'tcp', ...rest] = dstText.split('/');
        if (rest.length > 0) {
          throw new CliError(`dst: ${JSON.stringify(dstText)} is not DST:DPORT[/tcp|udp]`, EXIT_USAGE);
        }
        const src = parseEndpoint(srcText, 'src');
        const dst = parseEndpoint(dstEndpoint as string, 'dst');
        if (proto !== 'tcp' && proto !== 'udp')
          throw new CliError(`protocol: "${proto}" is not tcp or udp`, EXIT_USAGE);
        if (opts.hash !== '5-tuple' && opts.hash !== 'source-ip') {
          throw new CliError(`hash: "${opts.hash}" is not 5-tuple or source-ip`, EXIT_USAGE);
        }
        const seed = integerOption(opts.seed, '--seed', 0, 0xffff_ffff, true);
        const flow = {
          src: src.address,
          sport: src.port,
          dst: dst.address,
          dport: dst.port,
          protocol: proto as Protocol,
        };
        io.out(
          String(slotOf(flow, integerOption(opts.size, '--size', 2, MAX_TABLE_SIZE), seed, opts.hash as HashMode)),
        );
      } catch (err) {
        rethrow(err);
      }
    });
}
