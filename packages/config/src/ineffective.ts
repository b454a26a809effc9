/**
 * Settings that are valid but do not do what an operator would mean by them: `l4fleet apply` prints them as notes
 * and writes the fleet anyway. Nodes never refuse them (a fleet stored before these notes existed must still load on
 * an upgraded node), so they are not problems of parseFleet().
 *
 * - A member whose weight share is under one slot of a VIP's table (Maglev §3.4: each turn claims one slot, and a
 *   backend takes turns in proportion to its weight) owns no slot, so it takes no new flows although its weight is
 *   above 0, and it still counts as a primary taking flows for `minActiveMembers`.
 * - `minActiveMembers` above the pool's primaries: the backups take flows always, the primaries all up or not.
 * - More VIP x member pairs than the bpf data plane holds (BPF_MAX_VIP_MEMBERS): bpf nodes refuse the whole state
 *   and keep serving the last one; nftables and proxy nodes serve it, so it is a note and not a problem.
 */
import { buildTable } from '@l4fleet/maglev';
import { minActiveMembersOf } from './backup-activation.js';
import type { ConfigProblem } from './errors.js';
import { BPF_MAX_VIP_MEMBERS } from './limits.js';
import { backendsForPool, tableMembers } from './table.js';
import type { Fleet, Pool } from './types.js';
import { vipKey } from './vip-key.js';
import { servedVips } from './vip-state.js';

/** No decided status yet: every member counts as up (the table a fresh fleet starts with). */
const ALL_UP = new Map<string, never>();

/** A pool's table weights with every member up, walked once however many VIPs use the pool. */
interface PoolWeights {
  readonly backends: ReturnType<typeof backendsForPool>;
  readonly total: number;
  /** The smallest weight above 0 (Infinity: none). */
  readonly least: number;
}

function poolWeights(pool: Pool): PoolWeights {
  const backends = backendsForPool(pool, ALL_UP);
  let total = 0;
  let least = Number.POSITIVE_INFINITY;
  for (const b of backends) {
    const w = b.weight ?? 0;
    total += w;
    if (w > 0 && w < least) least = w;
  }
  return { backends, total, least };
}

/** Names of the members owning no slot of a `size`-slot table with every member up, though weighted above 0. */
function slotlessMembers(pool: Pool, weights: PoolWeights, size: number): string[] {
  // The share estimate first (Maglev §3.4: a backend's turns, one slot each, follow its weight): the table is built
  // only when the lightest member's share is under one slot.
  if ((size * weights.least) / weights.total >= 1) return [];
  const owned = new Uint32Array(weights.backends.length);
  for (const i of buildTable(weights.backends, size)) if (i >= 0) owned[i] = (owned[i] ?? 0) + 1;
  const members = tableMembers(pool);
  return weights.backends.flatMap((b, i) =>
    (b.weight ?? 0) > 0 && owned[i] === 0 ? [members[i]?.name ?? b.name] : [],
  );
}

/**
 * The bpf driver's backend ids the fleet needs: one per served VIP (a draining one keeps its table) and member of its
 * pool in the table (not disabled). A lower bound: previous owners (second chance) can add a few while they last.
 */
function vipMemberPairs(fleet: Fleet): number {
  const members = new Map(fleet.pools.map((p) => [p.name, p.members.filter((m) => m.state !== 'disabled').length]));
  let pairs = 0;
  for (const vip of servedVips(fleet)) pairs += members.get(vip.pool) ?? 0;
  return pairs;
}

/** Notes for `apply` (path and message, as problems are shown); empty when every setting does what it says. */
export function ineffectiveSettings(fleet: Fleet): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  const noted = new Set<string>();
  fleet.pools.forEach((pool, i) => {
    const wanted = minActiveMembersOf(pool);
    const primaries = pool.members.filter((m) => m.backup !== true).length;
    if (wanted > primaries && pool.members.some((m) => m.backup === true)) {
      out.push({
        path: `pools[${i}].minActiveMembers`,
        message: `${wanted} is more than the pool's ${primaries} primaries (members not marked backup): its backups take new flows always, with every primary up`,
      });
    }
  });
  const poolIndex = new Map(fleet.pools.map((p, i) => [p.name, i]));
  const weights = new Map<number, PoolWeights>();
  const checked = new Set<string>();
  fleet.vips.forEach((vip, k) => {
    const i = poolIndex.get(vip.pool);
    const pool = i === undefined ? undefined : fleet.pools[i];
    // One check per pool and table size: VIPs that share both share the table.
    if (i === undefined || !pool || checked.has(`${i}/${vip.tableSize}`)) return;
    checked.add(`${i}/${vip.tableSize}`);
    let w = weights.get(i);
    if (!w) weights.set(i, (w = poolWeights(pool)));
    for (const name of slotlessMembers(pool, w, vip.tableSize)) {
      const j = pool.members.findIndex((m) => m.name === name);
      const m = pool.members[j];
      if (!m || noted.has(`${i}/${j}`)) continue;
      noted.add(`${i}/${j}`);
      out.push({
        path: `pools[${i}].members[${j}].weight`,
        message: `${m.weight} gives member "${name}" no slot of vips[${k}] ${vipKey(vip)}'s ${vip.tableSize}-slot table (its share of the pool's weight is under one slot): it takes no new flows; raise its weight or the VIP's tableSize`,
      });
    }
  });
  const pairs = vipMemberPairs(fleet);
  if (pairs > BPF_MAX_VIP_MEMBERS) {
    const n = (v: number): string => v.toLocaleString('en-US');
    out.push({
      path: 'vips',
      message: `bpf nodes hold at most ${n(BPF_MAX_VIP_MEMBERS)} VIP x member pairs; this fleet has ${n(pairs)} (each served VIP times the members of its pool not disabled): bpf nodes will refuse it; nftables and proxy nodes serve it`,
    });
  }
  return out;
}
