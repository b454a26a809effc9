/** Predicted table churn of a fleet change: per VIP whose pool changed, the share of slots that move (Maglev §3.4). */
import { backendsForPool, type DecidedStatus, type Fleet, vipKey } from '@l4fleet/config';
import { buildNamedTable, churn } from '@l4fleet/maglev';

export interface VipChurn {
  readonly vip: string;
  readonly pool: string;
  readonly changed: number;
  readonly size: number;
  readonly fraction: number;
}

/** Churn for every VIP present before and after whose table inputs (pool members, size) differ. */
export function predictChurn(before: Fleet, after: Fleet, decided: DecidedStatus): VipChurn[] {
  const out: VipChurn[] = [];
  for (const vip of after.vips) {
    const key = vipKey(vip);
    const old = before.vips.find((v) => vipKey(v) === key);
    if (!old) continue;
    const oldPool = before.pools.find((p) => p.name === old.pool);
    const newPool = after.pools.find((p) => p.name === vip.pool);
    if (!oldPool || !newPool) continue;
    const a = backendsForPool(oldPool, decided);
    const b = backendsForPool(newPool, decided);
    if (old.tableSize === vip.tableSize && JSON.stringify(a) === JSON.stringify(b)) continue;
    if (old.tableSize !== vip.tableSize) {
      out.push({ vip: key, pool: vip.pool, changed: vip.tableSize, size: vip.tableSize, fraction: 1 });
      continue;
    }
    const c = churn(buildNamedTable(a, old.tableSize), buildNamedTable(b, vip.tableSize));
    out.push({ vip: key, pool: vip.pool, ...c });
  }
  return out;
}
