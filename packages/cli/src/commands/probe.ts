/**
 * `l4fleet probe POOL [MEMBER...]`: runs the pool's health check once against each member, from this host, with
 * the agent's own probe (F5's "test monitor"). For trying a check before applying it, or asking why a node sees a
 * member down: run it on that node (the path from the node is what the node's checks take; `--source` binds the
 * probe's address as `health.sourceAddress` does, `--ca-file` trusts roots as `health.caFile` does), or, with
 * `-f`, trying a check from a fleet file before `apply`. No rise or fall: one probe per member and check. A pool with
 * `additionalHealthChecks` has each of its checks run, all at once: a member passes when it passes every one (or
 * `healthChecksRequired` of them), as the agent takes it up only then, and a failure is named by its check
 * (`check 2 of 2 (tcp port 9100): ECONNREFUSED`, the agent's reason). Exit 0 when every probed member answered as its
 * checks expect, 1 otherwise.
 */
import {
  ipv4In6Problem,
  type Probe,
  type ProbeOptions,
  type ProbeResult,
  probeMember,
  readHealthCa,
} from '@l4fleet/agent';
import {
  canonicalAddress,
  checkLabel,
  endpointText,
  type Fleet,
  type HealthCheck,
  healthChecksOf,
  healthChecksRequiredOf,
  type Member,
} from '@l4fleet/config';
import type { Command } from 'commander';
import { CliError, EXIT_FAILURE, EXIT_USAGE } from '../io.js';
import { onceOption } from '../options.js';
import { renderTable } from '../table.js';
import { readFleetFile } from './apply.js';
import { type FleetCommandContext, outputFormat, renderData, withStore } from './context.js';
import { healthCheckLines } from './health-checks.js';

/** Probes in flight at once (the agent's health.maxConcurrentProbes default is 256; a person waits for these). */
const PROBE_CONCURRENCY = 32;

interface ProbeOptionsFlags {
  readonly output: string;
  readonly file?: string;
  readonly caFile?: string;
  readonly source?: string;
}

/** One check's probe of a member; `check` counts from 1 (`healthCheck`), as checkLabel does. */
export interface CheckResult {
  readonly check: number;
  readonly type: HealthCheck['type'];
  readonly endpoint: string;
  readonly ok: boolean;
  readonly latencyMs: number;
  readonly reason?: string;
}

/**
 * A member's result from the results of its checks (`healthCheck` first): up when `required` checks are (all, unless
 * the pool's healthChecksRequired says fewer); `reason` names each failed check as the agent does (`check 2 of 2 (tcp
 * port 9100): ECONNREFUSED`, `; ` between two), after how many failed when fewer than all are required (a failed
 * check is then no verdict by itself), with one check its bare reason; `latencyMs` is the slowest (they run at once);
 * `endpoint` is `healthCheck`'s. `checks` only with more than one check, so a single-check pool's result has the
 * shape it always had.
 */
function memberResult(m: Member, checks: readonly HealthCheck[], required: number, results: readonly CheckResult[]) {
  const labels = checks.map((c, i) => checkLabel(c, i, checks.length));
  const failed = results.filter((r) => !r.ok).map((r) => `${labels[r.check - 1]}: ${r.reason ?? 'failed'}`);
  const counted =
    required < checks.length ? `${failed.length} of ${checks.length} checks failed (${required} must pass): ` : '';
  const reason = checks.length === 1 ? results[0]?.reason : failed.length > 0 ? counted + failed.join('; ') : undefined;
  return {
    member: m.name,
    endpoint: results[0]?.endpoint ?? endpointText(m.address, m.port),
    ok: results.filter((r) => r.ok).length >= required,
    latencyMs: Math.max(0, ...results.map((r) => r.latencyMs)),
    ...(reason === undefined ? {} : { reason }),
    ...(checks.length > 1 ? { checks: results } : {}),
  };
}

/**
 * Every check of every member, at most PROBE_CONCURRENCY at once; in order, so a member's results are the
 * `checks.length` that follow the previous member's. A check with an `address` probes the same thing for every member:
 * once, its result shared (as the agent runs it), not once per member: a pool of 1,000 members with a database check
 * would otherwise open 1,000 connections to the database from the operator's host.
 */
export async function probeChecks(
  members: readonly Member[],
  checks: readonly HealthCheck[],
  probe: Probe,
  options: ProbeOptions,
): Promise<CheckResult[]> {
  const pairs = members.flatMap((m) => checks.map((check, i) => ({ m, check, i })));
  const shared = new Map<number, Promise<ProbeResult>>();
  const probeOnce = (m: Member, check: HealthCheck, i: number): Promise<ProbeResult> => {
    if (check.address === undefined) return probe({ address: m.address, port: m.port }, check, options);
    const once = shared.get(i) ?? probe({ address: m.address, port: m.port }, check, options);
    shared.set(i, once);
    return once;
  };
  return inBatches(pairs, PROBE_CONCURRENCY, async ({ m, check, i }): Promise<CheckResult> => {
    const r = await probeOnce(m, check, i);
    return {
      check: i + 1,
      type: check.type,
      endpoint: endpointText(check.address ?? m.address, check.port ?? m.port),
      ok: r.ok,
      latencyMs: Math.round(r.latencyMs * 10) / 10,
      ...(r.reason === undefined ? {} : { reason: r.reason }),
    };
  });
}

async function inBatches<T, R>(items: readonly T[], size: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += size) out.push(...(await Promise.all(items.slice(i, i + size).map(fn))));
  return out;
}

/** An address health.sourceAddress reads (canonicalAddress): isIP also takes a zone (fe80::1%eth0), which it does not. */
function isAddress(text: string): boolean {
  try {
    canonicalAddress(text);
    return true;
  } catch {
    return false;
  }
}

/** 0.0.0.0 or :: in any spelling (`0::0`), as health.sourceAddress takes it (canonical text); `address` is one. */
function isUnspecified(address: string): boolean {
  const canonical = canonicalAddress(address).address;
  return canonical === '0.0.0.0' || canonical === '::';
}

export function registerProbe(program: Command, ctx: FleetCommandContext): void {
  program
    .command('probe')
    .description("run a pool's health checks once against its members, from this host (exit 1 if one fails)")
    .argument('<pool>', 'pool name')
    .argument('[members...]', 'member names (default: every member of the pool)')
    .option(
      '--ca-file <file>',
      'PEM roots for checks with verifyCertificate (agent.yaml health.caFile)',
      onceOption('--ca-file'),
    )
    .option('--source <address>', 'source address of the probes (agent.yaml health.sourceAddress)')
    .option(
      '-f, --file <file>',
      'take the pool from this fleet file instead of etcd (try a check before apply)',
      onceOption('-f, --file'),
    )
    .option('-o, --output <format>', 'table | json | yaml', 'table')
    .action(async (poolName: string, names: string[], opts: ProbeOptionsFlags, cmd: Command) => {
      const format = outputFormat(opts.output);
      // Checked up front: the socket's bind would fail each probe with `Invalid IP address` (exit 1, no field named).
      // A zone (fe80::1%eth0) is refused as health.sourceAddress refuses it: its address parser reads none.
      if (opts.source !== undefined && !isAddress(opts.source)) {
        throw new CliError(`--source: ${JSON.stringify(opts.source)} is not an IPv4 or IPv6 address`, EXIT_USAGE);
      }
      // As health.sourceAddress refuses it (no interface lists ::ffff:a.b.c.d): probe shows what the node's checks see.
      const inV6 = opts.source === undefined ? undefined : ipv4In6Problem(opts.source);
      if (inV6) throw new CliError(`--source: ${JSON.stringify(opts.source)} is ${inV6}`, EXIT_USAGE);
      // As health.sourceAddress refuses it too: bound to 0.0.0.0 or ::, the probe's socket takes the kernel's choice,
      // what leaving --source out gives, while the command line says a source was chosen.
      if (opts.source !== undefined && isUnspecified(opts.source)) {
        throw new CliError(
          `--source: ${JSON.stringify(opts.source)} is the unspecified address: leave --source out for the kernel's choice`,
          EXIT_USAGE,
        );
      }
      let ca: Buffer | undefined;
      try {
        ca = opts.caFile === undefined ? undefined : readHealthCa(opts.caFile);
      } catch (err) {
        // Exit 1: the named file cannot be read or holds no certificate; the command line itself is right.
        throw new CliError((err as Error).message.replace(/^health\.caFile/, '--ca-file'), EXIT_FAILURE, {
          cause: err,
        });
      }
      const run = async (fleet: Fleet, from: string): Promise<void> => {
        const pool = fleet.pools.find((p) => p.name === poolName);
        if (!pool) throw new CliError(`pool ${JSON.stringify(poolName)}: not in ${from}`, EXIT_FAILURE);
        const unknown = names.filter((n) => !pool.members.some((m) => m.name === n));
        if (unknown.length > 0) {
          throw new CliError(
            `pool ${pool.name}: no member ${unknown.map((n) => JSON.stringify(n)).join(', ')} (members: ${pool.members.map((m) => m.name).join(', ')})`,
            EXIT_FAILURE, // not found, as an unknown pool and `member drain POOL NOSUCH`
          );
        }
        const members = names.length === 0 ? pool.members : pool.members.filter((m) => names.includes(m.name));
        const checks = healthChecksOf(pool);
        const required = healthChecksRequiredOf(pool);
        const probed = await probeChecks(members, checks, probeMember, {
          ...(opts.source ? { sourceAddress: opts.source } : {}),
          ...(ca ? { ca } : {}),
        });
        const results = members.map((m, j) =>
          memberResult(m, checks, required, probed.slice(j * checks.length, (j + 1) * checks.length)),
        );
        const failed = results.filter((r) => !r.ok).length;
        if (format !== 'table') {
          ctx.io.out(
            renderData(format, {
              pool: pool.name,
              from,
              healthCheck: pool.healthCheck,
              ...(pool.additionalHealthChecks ? { additionalHealthChecks: pool.additionalHealthChecks } : {}),
              ...(pool.healthChecksRequired ? { healthChecksRequired: pool.healthChecksRequired } : {}),
              results,
            }),
          );
        } else {
          // PROBED: every endpoint the member's checks probed (a check with its own port probes that one).
          const endpoints = (r: (typeof results)[number]) =>
            [...new Set((r.checks ?? [r]).map((c) => c.endpoint))].join(',');
          ctx.io.out(
            [
              ...healthCheckLines(pool, `Pool ${pool.name}: `),
              `One probe per member${checks.length > 1 ? ' and check' : ''} from this host${opts.source ? ` (source ${opts.source})` : ''}${checks.length > 1 ? ', all at once (LATENCY: the slowest)' : ''}; rise and fall do not apply.`,
              '',
              renderTable(
                ['MEMBER', 'PROBED', 'RESULT', 'LATENCY', 'REASON'],
                results.map((r) => [r.member, endpoints(r), r.ok ? 'up' : 'down', `${r.latencyMs} ms`, r.reason ?? '']),
              ),
              '',
              `${results.length - failed} up, ${failed} down`,
            ].join('\n'),
          );
        }
        if (failed > 0)
          throw new CliError(
            `${failed} of ${results.length} members failed ${checks.length === 1 ? 'the check' : required < checks.length ? `more than ${checks.length - required} of their ${checks.length} checks` : 'a check'}`,
            EXIT_FAILURE,
          );
      };
      if (opts.file !== undefined) return run(readFleetFile(opts.file), opts.file);
      await withStore(ctx, cmd, async (store) => {
        const { fleet, revision } = await store.getDesired();
        await run(fleet, `the fleet (revision ${revision})`);
      });
    });
}
