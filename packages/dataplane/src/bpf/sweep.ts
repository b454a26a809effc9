/**
 * The sweep: tables no VIP points at any more (replaced by a new size, or their VIP removed) are deleted from
 * l4f_tables by the driver's timer, not by an apply, once no program run can still use them (plan.ts).
 */
import { Op, type Request } from './loader.js';
import type { KernelState } from './plan.js';

/** A table replaced this long ago can no longer be in use by a program run (RCU: microseconds). */
export const RETIRE_AFTER_MS = 1_000;
/**
 * Table deletes per sweep. Each delete from the map of tables waits for an RCU grace period in the kernel (8-16 ms
 * on some VMs; no batch delete for arrays: docs/design/0007), and applies queue behind a sweep: a sweep of 100
 * tables would hold the next apply for a second. The rest go in the sweeps that follow.
 */
export const SWEEP_MAX_DELETES = 4;

/** OP_TABLE_DELETE's payload: u32 index. */
function tableIndex(t: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(t, 0);
  return b;
}

/**
 * Deletes the retired tables no program run can still be using, at most `maxDeletes`; the rest stay for a later
 * sweep (`nextDueMs`: when the next one is due, 0 = now; undefined = none retired).
 */
export function planSweep(
  state: KernelState,
  now: number,
  maxDeletes = SWEEP_MAX_DELETES,
): { requests: Request[]; next: KernelState; nextDueMs: number | undefined } {
  const retired = new Map(state.retired);
  const tables = new Map(state.tables);
  const previous = new Map(state.previous);
  const inUse = new Set([...state.vips.values()].map((v) => v.value.table));
  const requests: Request[] = [];
  let nextDueMs: number | undefined;
  for (const [t, since] of retired) {
    if (inUse.has(t)) retired.delete(t);
    else if (now - since >= RETIRE_AFTER_MS && requests.length < maxDeletes) {
      requests.push({ op: Op.tableDelete, payload: tableIndex(t), what: `table-delete ${t}` });
      retired.delete(t);
      tables.delete(t);
      previous.delete(t);
    } else nextDueMs = Math.min(nextDueMs ?? Number.POSITIVE_INFINITY, Math.max(0, since + RETIRE_AFTER_MS - now));
  }
  return { requests, next: { ...state, tables, previous, retired }, nextDueMs };
}
