/**
 * Predicted table churn of a fleet change: per VIP whose table inputs changed, the share of slots that move to
 * another backend (Maglev §3.4: minimal disruption). Linear in the fleet's size: VIPs and pools are looked up in
 * maps, each (pool, table size) pair is built once however many VIPs share it, and slots are compared by index.
 */
import { type BackendSpec, buildNamedTable, churn, type NamedTable } from '@l4fleet/maglev';
import { backendsForPool, type DecidedStatus } from './table.js';
import type { Fleet, Pool } from './types.js';
import { vipKey } from './vip-key.js';

export interface VipChurn {
  readonly vip: string;
  readonly pool: string;
  /** Slots whose backend changes. */
  readonly changed: number;
  readonly size: number;
  /** changed / size: the share of new flows that land on another backend. */
  readonly fraction: number;
}

function sameBackends(a: readonly BackendSpec[], b: readonly BackendSpec[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    if (a[i]?.name !== b[i]?.name || a[i]?.weight !== b[i]?.weight) return false;
  }
  return true;
}

/** Churn for every VIP present before and after whose table inputs (members, weights, status, size) differ. */
export function predictChurn(before: Fleet, after: Fleet, decided: DecidedStatus): VipChurn[] {
  const oldVips = new Map(before.vips.map((v) => [vipKey(v), v]));
  const oldPools = new Map(before.pools.map((p) => [p.name, p]));
  const newPools = new Map(after.pools.map((p) => [p.name, p]));
  const specs = new Map<Pool, BackendSpec[]>();
  const specsOf = (p: Pool): BackendSpec[] => {
    let s = specs.get(p);
    if (!s) {
      s = backendsForPool(p, decided);
      specs.set(p, s);
    }
    return s;
  };
  const tables = new Map<string, NamedTable>();
  const tableOf = (side: string, p: Pool, size: number): NamedTable => {
    const key = `${side}\n${p.name}\n${size}`;
    let t = tables.get(key);
    if (!t) {
      t = buildNamedTable(specsOf(p), size);
      tables.set(key, t);
    }
    return t;
  };
  const out: VipChurn[] = [];
  for (const vip of after.vips) {
    const key = vipKey(vip);
    const old = oldVips.get(key);
    if (!old) continue;
    const oldPool = oldPools.get(old.pool);
    const newPool = newPools.get(vip.pool);
    if (!oldPool || !newPool) continue;
    if (old.tableSize !== vip.tableSize) {
      // Every slot is re-derived at a new size: count all of them as moving.
      out.push({ vip: key, pool: vip.pool, changed: vip.tableSize, size: vip.tableSize, fraction: 1 });
      continue;
    }
    if (sameBackends(specsOf(oldPool), specsOf(newPool))) continue;
    const c = churn(tableOf('before', oldPool, old.tableSize), tableOf('after', newPool, vip.tableSize));
    out.push({ vip: key, pool: vip.pool, ...c });
  }
  return out;
}
