/**
 * The periodic read-back of the data plane (DataPlane.verify). A pass applies only when a table changes, so state
 * changed behind the agent, by hand or by another program (an nft table or element deleted, a bpf program's clsact
 * removed), black-holed the node's ECMP share, with /readyz 200 and the routes announced, until the next table change.
 * The reconciler runs the verify in its own queue (never beside an apply) and handles its failure as an apply's.
 */
import type { DataPlane } from '@l4fleet/dataplane';
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import { DEFAULT_DATAPLANE_VERIFY_INTERVAL_S } from '../config/defaults.js';
import type { AgentMetrics } from '../observe/metrics.js';

/** How often the data plane is read back and repaired, ms: agent.yaml's default dataplane.verifyIntervalS. */
export const DEFAULT_DATAPLANE_VERIFY_INTERVAL_MS = DEFAULT_DATAPLANE_VERIFY_INTERVAL_S * 1000;

export interface VerifyTimer {
  /** Starts the period (the first apply went through); again, nothing. */
  start(): void;
  close(): void;
}

/** Calls `onDue` every `intervalMs` from the first start(), until close(); `intervalMs` 0 (or less): never. */
export function createVerifyTimer(clock: Clock, intervalMs: number, onDue: () => void): VerifyTimer {
  let timer: unknown;
  let armed = false;
  let closed = false;
  const arm = (): void => {
    if (intervalMs <= 0 || armed || closed) return;
    armed = true;
    timer = clock.setTimeout(() => {
      armed = false;
      arm();
      onDue();
    }, intervalMs);
  };
  return {
    start: arm,
    close() {
      closed = true;
      clock.clearTimeout(timer);
    },
  };
}

/**
 * One verify: drift it repaired is a warning naming the VIPs it touched, and l4fleet_table_drift_repairs_total
 * (someone keeps changing the node's forwarding: find who). Throws what verify throws.
 */
export async function verifyDataPlane(dataPlane: DataPlane, metrics: AgentMetrics, log: Logger): Promise<void> {
  const res = await dataPlane.verify();
  if (res.transactions === 0) return;
  metrics.tableDriftRepairsTotal.inc();
  const vips = res.vips.filter((v) => v.action !== 'unchanged').map((v) => v.vip);
  log.warn({ event: 'dataPlaneDriftRepaired', vips, transactions: res.transactions });
}
