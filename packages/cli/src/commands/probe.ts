/**
 * `l4fleet probe POOL [MEMBER...]`: runs the pool's health check once against each member, from this host, with
 * the agent's own probe (F5's "test monitor"). For trying a check before applying it, or asking why a node sees a
 * member down: run it on that node (the path from the node is what the node's checks take; `--source` binds the
 * probe's address as `health.sourceAddress` does, `--ca-file` trusts roots as `health.caFile` does), or, with
 * `-f`, trying a check from a fleet file before `apply`. No rise or fall: one probe per member. Exit 0 when every probed member answered as its check expects, 1 otherwise.
 */
import { type ProbeResult, probeMember, readHealthCa } from '@l4fleet/agent';
import { describeHealthCheck, endpointText, type Fleet } from '@l4fleet/config';
import type { Command } from 'commander';
import { CliError, EXIT_FAILURE, EXIT_USAGE } from '../io.js';
import { readFleetFile } from './apply.js';
import { type FleetCommandContext, outputFormat, renderData, renderTable, withStore } from './context.js';

/** Probes in flight at once (the agent's health.maxConcurrentProbes default is 256; a person waits for these). */
const PROBE_CONCURRENCY = 32;

interface ProbeOptionsFlags {
  readonly output: string;
  readonly file?: string;
  readonly caFile?: string;
  readonly source?: string;
}

async function inBatches<T, R>(items: readonly T[], size: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += size) out.push(...(await Promise.all(items.slice(i, i + size).map(fn))));
  return out;
}

export function registerProbe(program: Command, ctx: FleetCommandContext): void {
  program
    .command('probe')
    .description("run a pool's health check once against its members, from this host (exit 1 if one fails)")
    .argument('<pool>', 'pool name')
    .argument('[members...]', 'member names (default: every member of the pool)')
    .option('--ca-file <file>', 'PEM roots for checks with verifyCertificate (agent.yaml health.caFile)')
    .option('--source <address>', 'source address of the probes (agent.yaml health.sourceAddress)')
    .option('-f, --file <file>', 'take the pool from this fleet file instead of etcd (try a check before apply)')
    .option('-o, --output <format>', 'table | json | yaml', 'table')
    .action(async (poolName: string, names: string[], opts: ProbeOptionsFlags, cmd: Command) => {
      const format = outputFormat(opts.output);
      let ca: Buffer | undefined;
      try {
        ca = opts.caFile === undefined ? undefined : readHealthCa(opts.caFile);
      } catch (err) {
        throw new CliError((err as Error).message.replace(/^health\.caFile/, '--ca-file'), EXIT_USAGE, { cause: err });
      }
      const run = async (fleet: Fleet, from: string): Promise<void> => {
        const pool = fleet.pools.find((p) => p.name === poolName);
        if (!pool) throw new CliError(`pool ${JSON.stringify(poolName)}: not in ${from}`, EXIT_FAILURE);
        const unknown = names.filter((n) => !pool.members.some((m) => m.name === n));
        if (unknown.length > 0) {
          throw new CliError(
            `pool ${pool.name}: no member ${unknown.map((n) => JSON.stringify(n)).join(', ')} (members: ${pool.members.map((m) => m.name).join(', ')})`,
            EXIT_USAGE,
          );
        }
        const members = names.length === 0 ? pool.members : pool.members.filter((m) => names.includes(m.name));
        const hc = pool.healthCheck;
        const results = await inBatches(members, PROBE_CONCURRENCY, async (m) => {
          const r: ProbeResult = await probeMember({ address: m.address, port: m.port }, hc, {
            ...(opts.source ? { sourceAddress: opts.source } : {}),
            ...(ca ? { ca } : {}),
          });
          return {
            member: m.name,
            endpoint: endpointText(m.address, hc.port ?? m.port),
            ok: r.ok,
            latencyMs: Math.round(r.latencyMs * 10) / 10,
            ...(r.reason === undefined ? {} : { reason: r.reason }),
          };
        });
        const failed = results.filter((r) => !r.ok).length;
        if (format !== 'table') ctx.io.out(renderData(format, { pool: pool.name, from, healthCheck: hc, results }));
        else {
          ctx.io.out(
            [
              `Pool ${pool.name}: ${describeHealthCheck(hc)}`,
              `One probe per member from this host${opts.source ? ` (source ${opts.source})` : ''}; rise and fall do not apply.`,
              '',
              renderTable(
                ['MEMBER', 'PROBED', 'RESULT', 'LATENCY', 'REASON'],
                results.map((r) => [r.member, r.endpoint, r.ok ? 'up' : 'down', `${r.latencyMs} ms`, r.reason ?? '']),
              ),
              '',
              `${results.length - failed} up, ${failed} down`,
            ].join('\n'),
          );
        }
        if (failed > 0) throw new CliError(`${failed} of ${results.length} members failed the check`, EXIT_FAILURE);
      };
      if (opts.file !== undefined) return run(readFleetFile(opts.file), opts.file);
      await withStore(ctx, cmd, async (store) => {
        const { fleet, revision } = await store.getDesired();
        await run(fleet, `the fleet (revision ${revision})`);
      });
    });
}
