/**
 * What a pass says once the data plane took its tables (reconciler.ts): a `table.applied` event and the checksum
 * series per VIP whose table changed, the usable-backend and backup gauges per VIP, and every series of a VIP that
 * is gone removed (a removed VIP must not keep reading as announced or as holding a table).
 */
import type { ApplyResult } from '@l4fleet/dataplane';
import type { EventPublisher } from '../events/publisher.js';
import type { AgentMetrics } from '../observe/metrics.js';
import type { PlannedTable } from './plan.js';

export interface AppliedContext {
  /** The pass's duration so far, for the events. */
  readonly seconds: number;
  readonly revision: number;
  /** Checksums of the tables applied before, per VIP key. */
  readonly checksums: ReadonlyMap<string, string>;
  /** The VIPs l4fleet_vip_announced says 1 for: a VIP that is gone leaves it. */
  readonly markedVips: Set<string>;
  readonly events: EventPublisher;
  readonly metrics: AgentMetrics;
}

/** Records an apply that went through; returns the checksums now applied, per VIP key. */
export function recordApplied(
  planned: readonly PlannedTable[],
  res: ApplyResult,
  ctx: AppliedContext,
): Map<string, string> {
  const { checksums, events, metrics, markedVips } = ctx;
  const slotsByVip = new Map(res.vips.map((v) => [v.vip, v.slotsChanged]));
  const next = new Map<string, string>();
  for (const t of planned) {
    next.set(t.key, t.table.checksum);
    if (checksums.get(t.key) !== t.table.checksum) {
      events.emit('table.applied', {
        vip: t.key,
        checksum: t.table.checksum,
        slotsChanged: slotsByVip.get(t.key) ?? 0,
        durationMs: Math.round(ctx.seconds * 1000),
        revision: ctx.revision,
      });
      metrics.tableChecksum.remove({ vip: t.key, checksum: checksums.get(t.key) ?? '' });
      metrics.tableChecksum.set({ vip: t.key, checksum: t.table.checksum }, 1);
    }
    metrics.tableUsableBackends.set({ vip: t.key }, t.usableBackends);
    metrics.tableBackupServing.set({ vip: t.key }, t.backupServing ? 1 : 0);
  }
  for (const [vip, sum] of checksums) {
    if (!next.has(vip)) {
      metrics.tableChecksum.remove({ vip, checksum: sum });
      metrics.tableUsableBackends.remove({ vip });
      metrics.tableBackupServing.remove({ vip });
      metrics.tableBelowMinUpMembers.remove({ vip });
      metrics.vipAnnounced.remove({ vip });
      markedVips.delete(vip);
    }
  }
  return next;
}
