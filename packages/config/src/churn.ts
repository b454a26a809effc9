/**
 * Predicted table churn of a fleet change: per VIP whose table inputs changed, the share of slots whose flows land on
 * another backend. Computed, not assumed to be the member's share: Maglev §3.4 is near-minimal, not minimal (removing
 * one of 1,000 members at M = 65,537 moves 0.68% of slots, not 0.10%; a weighted pool's top weight changing moves
 * more: packages/maglev/README.md "Churn", "Weights"). A backend is a member's name and endpoint: the same name at
 * another address or port (a blue/green switch, a re-addressed member) is another backend to the flows. A new hash
 * mode, seed or table size sends every flow to another slot, so all slots count. Linear in the fleet's size: VIPs and
 * pools are looked up in maps, each (pool, table size) pair is built once however many VIPs share it, and slots are
 * compared by index.
 */
import { buildTable, churn, type NamedTable } from '@l4fleet/maglev';
import { type DecidedStatus, tableInputsOf } from './table.js';
import { type HistoryMember, sameTableInputs } from './table-history.js';
import type { Fleet, Pool } from './types.js';
import { vipKey } from './vip-key.js';

export interface VipChurn {
  readonly vip: string;
  readonly pool: string;
  /** Slots whose backend (member name and endpoint) changes. */
  readonly changed: number;
  readonly size: number;
  /** changed / size: the share of new flows that land on another backend. */
  readonly fraction: number;
}

/** A slot owner as its flows see it: a member's name and endpoint (names alone missed a blue/green switch). */
const backendOf = (m: HistoryMember): string => `${m.name}\t${m.address}\t${m.port}`;

/**
 * Churn for every VIP present before and after whose table inputs (members, endpoints, weights, status, size, hash
 * mode, seed) differ. A fleet without a seed keeps the stored one (the store's apply), so only two seeds compare.
 */
export function predictChurn(before: Fleet, after: Fleet, decided: DecidedStatus): VipChurn[] {
  const oldVips = new Map(before.vips.map((v) => [vipKey(v), v]));
  const oldPools = new Map(before.pools.map((p) => [p.name, p]));
  const newPools = new Map(after.pools.map((p) => [p.name, p]));
  const newSeed = before.hashSeed !== undefined && after.hashSeed !== undefined && before.hashSeed !== after.hashSeed;
  const inputs = new Map<Pool, HistoryMember[]>();
  const inputsOf = (p: Pool): HistoryMember[] => {
    let s = inputs.get(p);
    if (!s) {
      s = tableInputsOf(p, decided);
      inputs.set(p, s);
    }
    return s;
  };
  const tables = new Map<string, NamedTable>();
  const tableOf = (side: string, p: Pool, size: number): NamedTable => {
    const key = `${side}\n${p.name}\n${size}`;
    let t = tables.get(key);
    if (!t) {
      // Slots follow (name, weight) only (§3.4); owners are compared by name and endpoint.
      const members = inputsOf(p);
      t = { backends: members.map(backendOf), slots: buildTable(members, size) };
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
    if (old.tableSize !== vip.tableSize || old.hash !== vip.hash || newSeed) {
      // Every flow hashes to another slot (or every slot is re-derived at a new size): count all of them as moving.
      out.push({ vip: key, pool: vip.pool, changed: vip.tableSize, size: vip.tableSize, fraction: 1 });
      continue;
    }
    if (sameTableInputs(inputsOf(oldPool), inputsOf(newPool))) continue;
    const c = churn(tableOf('before', oldPool, old.tableSize), tableOf('after', newPool, vip.tableSize));
    out.push({ vip: key, pool: vip.pool, ...c });
  }
  return out;
}
