/**
 * The periodic read-back of the data plane (DataPlane.verify). A pass applies only when a table changes, so state
 * changed behind the agent, by hand or by another program (an nft table or element deleted, a bpf program's clsact
 * removed), black-holed the node's ECMP share, with /readyz 200 and the routes announced, until the next table change.
 * The reconciler runs the verify in its own queue (never beside an apply; a pass requested meanwhile waits for it, at
 * most one verify's duration) and handles its failure as an apply's.
 */
import type { ApplyResult, DataPlane } from '@l4fleet/dataplane';
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import { DEFAULT_DATAPLANE_VERIFY_INTERVAL_S } from '../config/defaults.js';
import type { AgentMetrics } from '../observe/metrics.js';

/** How often the data plane is read back and repaired, ms: agent.yaml's default dataplane.verifyIntervalS. */
export const DEFAULT_DATAPLANE_VERIFY_INTERVAL_MS = DEFAULT_DATAPLANE_VERIFY_INTERVAL_S * 1000;

/**
 * The next verify is due this many times the last one's duration after it ended, when that is longer than the
 * interval: a verify holds the reconciler's queue (a pass a health change requests waits behind it) and its cost grows
 * with the fleet (nftables ~1 s per 65,537-slot VIP), so it takes at most 1/11 of the agent's time, whatever the size.
 */
export const VERIFY_SPACING_FACTOR = 10;

/** When the next verify is due, ms after the last one ended: max(intervalMs, VERIFY_SPACING_FACTOR x its duration). */
export function verifySpacingMs(intervalMs: number, lastDurationMs: number): number {
  return Math.max(intervalMs, Math.ceil(VERIFY_SPACING_FACTOR * lastDurationMs));
}

export interface VerifyTimer {
  /** Starts the period (the first apply went through): due `intervalMs` from now; again, nothing. */
  start(): void;
  /**
   * The verify the last onDue asked for ended (or was skipped: 0), having taken `durationMs`: the next is due
   * verifySpacingMs(intervalMs, durationMs) from now.
   */
  ended(durationMs: number): void;
  close(): void;
}

/**
 * Calls `onDue` `intervalMs` after start(), then each time verifySpacingMs after the ended() that follows it (none
 * while a verify is due or running), until close(); `intervalMs` 0 (or less): never.
 */
export function createVerifyTimer(clock: Clock, intervalMs: number, onDue: () => void): VerifyTimer {
  let timer: unknown;
  /** idle: not started; armed: a timer runs; due: onDue was called, its verify has not ended yet. */
  let phase: 'idle' | 'armed' | 'due' = 'idle';
  let closed = false;
  const arm = (ms: number): void => {
    if (intervalMs <= 0 || closed) return;
    phase = 'armed';
    timer = clock.setTimeout(() => {
      phase = 'due';
      onDue();
    }, ms);
  };
  return {
    start() {
      if (phase === 'idle') arm(intervalMs);
    },
    ended(durationMs) {
      if (phase === 'due') arm(verifySpacingMs(intervalMs, durationMs));
    },
    close() {
      closed = true;
      clock.clearTimeout(timer);
    },
  };
}

/**
 * One verify: drift it repaired is a warning naming the VIPs it touched, and l4fleet_table_drift_repairs_total
 * (someone keeps changing the node's forwarding: find who); either way its duration (`ms`, at debug when it repaired
 * nothing). Counted in l4fleet_table_verifies_total by result, apart from the applies: a failed read-back is no table
 * the kernel refused, and must not raise the apply-error alerts. Throws what verify throws.
 */
export async function verifyDataPlane(
  dataPlane: DataPlane,
  metrics: AgentMetrics,
  log: Logger,
  clock: Clock,
): Promise<void> {
  const started = clock.monoMs();
  let res: Awaited<ReturnType<DataPlane['verify']>>;
  try {
    res = await dataPlane.verify();
  } catch (err) {
    metrics.tableVerifiesTotal.inc({ result: 'error' });
    // Failed after it repaired some drift (a proxy listener reopened, another that cannot listen): counted all the same.
    countRepaired(repairedBy(err), 'verify', metrics, log);
    throw err;
  }
  const ms = Math.round(clock.monoMs() - started);
  if (res.transactions === 0) {
    metrics.tableVerifiesTotal.inc({ result: 'ok' });
    log.debug({ event: 'dataPlaneVerified', ms });
    return;
  }
  metrics.tableVerifiesTotal.inc({ result: 'repaired' });
  metrics.tableDriftRepairsTotal.inc();
  const vips = res.vips.filter((v) => v.action !== 'unchanged').map((v) => v.vip);
  log.warn({ event: 'dataPlaneDriftRepaired', during: 'verify', vips, transactions: res.transactions, ms });
}

/**
 * Drift an apply found and repaired (ApplyResult.repaired: a proxy listener lost under it, which every apply opens
 * again, not only verify): counted and logged as a verify's repair, once per apply, or with routine table changes the
 * apply would repair it before the next verify and L4fleetDataPlaneDrift would never fire for a VIP that took no
 * traffic while announced. Nothing when the apply repaired nothing.
 */
export function countApplyRepairs(res: ApplyResult, metrics: AgentMetrics, log: Logger): void {
  countRepaired(res.repaired ?? [], 'apply', metrics, log, { transactions: res.transactions });
}

/**
 * The VIPs a data-plane call that threw repaired before it failed (DataPlaneError.repaired: the proxy reopened some lost
 * listeners, then one could not listen again); none for any other error. Those listeners are open again, so no later
 * call finds them lost: counted from the failure, or never.
 */
export function repairedBy(err: unknown): readonly string[] {
  const repaired = (err as { repaired?: unknown } | undefined)?.repaired;
  return Array.isArray(repaired) ? (repaired as string[]) : [];
}

/** Drift repaired (`vips` non-empty): l4fleet_table_drift_repairs_total once, and dataPlaneDriftRepaired naming them. */
export function countRepaired(
  vips: readonly string[],
  during: 'apply' | 'verify',
  metrics: AgentMetrics,
  log: Logger,
  extra: Record<string, unknown> = {},
): void {
  if (vips.length === 0) return;
  metrics.tableDriftRepairsTotal.inc();
  log.warn({ event: 'dataPlaneDriftRepaired', during, vips, ...extra });
}
