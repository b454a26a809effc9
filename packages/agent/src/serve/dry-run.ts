/**
 * The `dry-run` data plane: forwards nothing, keeps the last desired tables (so counters and status work) and
 * reports deltas. Unlike the dataplane package's recording fake it keeps no history and compares only the tables
 * that changed (by identity, then by slot owner), so a long-running dry-run agent and the 16-agent bench pay for
 * what changed, not for every slot of every VIP on every apply.
 */

import { vipKey } from '@l4fleet/config';
import {
  type ApplyResult,
  changedSlots,
  type DataPlane,
  type DataPlaneCounters,
  nothingVerified,
  type VipApplyReport,
  type VipTable,
} from '@l4fleet/dataplane';
import { AgentError } from '../errors.js';

const keyOf = (t: VipTable) => `${t.vip.address}|${t.vip.port}|${t.vip.protocol}`;
const label = (t: VipTable) => vipKey(t.vip);

export interface DryRunDataPlane extends DataPlane {
  readonly tables: readonly VipTable[];
  readonly applies: number;
}

export function createDryRunDataPlane(): DryRunDataPlane {
  let current = new Map<string, VipTable>();
  let applies = 0;
  let closed = false;
  return {
    get tables() {
      return [...current.values()];
    },
    get applies() {
      return applies;
    },
    async apply(desired): Promise<ApplyResult> {
      if (closed) throw new AgentError('CLOSED', 'dry-run data plane: apply after close');
      const started = performance.now();
      const next = new Map<string, VipTable>();
      const vips: VipApplyReport[] = [];
      let total = 0;
      for (const t of desired) {
        const key = keyOf(t);
        if (next.has(key)) throw new AgentError('STATE_INVALID', `dry-run data plane: VIP ${label(t)} given twice`);
        next.set(key, t);
        const old = current.get(key);
        const same = old === t;
        const changed = !old ? t.slots.length : same ? 0 : changedSlots(old, t);
        const rulesReplaced =
          !!old && (old.hash !== t.hash || old.seed !== t.seed || old.slots.length !== t.slots.length);
        total += changed;
        vips.push({
          vip: label(t),
          action: !old ? 'added' : changed > 0 || rulesReplaced ? 'updated' : 'unchanged',
          slotsChanged: changed,
          rulesReplaced,
        });
      }
      for (const [key, old] of current) {
        if (next.has(key)) continue;
        vips.push({ vip: label(old), action: 'removed', slotsChanged: old.slots.length, rulesReplaced: false });
        total += old.slots.length;
      }
      current = next;
      applies += 1;
      return {
        vips,
        slotsChanged: total,
        backendsAdded: 0,
        backendsRemoved: 0,
        tableCreated: applies === 1,
        transactions: vips.some((v) => v.action !== 'unchanged') ? 1 : 0,
        durationMs: performance.now() - started,
      };
    },
    /** Nothing to read back: a dry run forwards nothing, so nothing can drift. */
    async verify(): Promise<ApplyResult> {
      if (closed) throw new AgentError('CLOSED', 'dry-run data plane: verify after close');
      return {
        ...nothingVerified(),
        vips: [...current.values()].map((t) => ({
          vip: label(t),
          action: 'unchanged' as const,
          slotsChanged: 0,
          rulesReplaced: false,
        })),
      };
    },
    async counters(): Promise<DataPlaneCounters> {
      const zero = { packets: 0, bytes: 0 };
      return {
        vips: [...current.values()].map((t) => ({ vip: label(t), ...zero })),
        backends: [],
        drops: { port: zero, 'no-backend': zero, source: zero },
        flowTable: { entries: 0, fullPackets: 0 },
      };
    },
    async close() {
      closed = true;
    },
  };
}
