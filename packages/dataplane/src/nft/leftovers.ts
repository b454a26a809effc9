/**
 * Per-VIP objects left in the table without their VIP chain: the jump in `vips4`/`vips6` and then the chain deleted by
 * hand (the kernel refuses to delete a chain a jump still names), its slot map, overlay, live set and counter left. The model is built from the chains, so such a VIP reads as
 * absent; written again as new, `add map` kept the old map and its elements: every slot element whose value differed
 * was refused (the whole transaction, each apply and verify after), and with the same slot map the old overlay
 * elements stayed and, consulted first, sent new flows to where the slots pointed before.
 */
import { liveSet, overlayMap, parseVipKey, slotsMap } from './names.js';

export interface LeftoverObject {
  readonly kind: 'map' | 'set' | 'counter';
  readonly name: string;
}

/** readKernelState's addition to the model (KernelState): leftovers by VIP key. Absent: none. */
export interface WithLeftovers {
  readonly leftovers?: ReadonlyMap<string, readonly LeftoverObject[]>;
}

const PER_VIP = /^(v_[0-9a-f]+_(?:tcp|udp)_\d+)_(slots|over|live)$/;

/**
 * The per-VIP objects of `objects` (map and set names) and `counters` whose VIP has no chain in `chains`, by VIP key.
 * A map and a set are deleted alike (both are sets to the kernel), so the name's suffix gives the kind.
 */
export function findLeftovers(
  objects: ReadonlySet<string>,
  counters: ReadonlySet<string>,
  chains: ReadonlyMap<string, string>,
): Map<string, LeftoverObject[]> {
  const out = new Map<string, LeftoverObject[]>();
  const add = (key: string, o: LeftoverObject): void => {
    if (chains.has(key) || parseVipKey(key) === undefined) return;
    out.set(key, [...(out.get(key) ?? []), o]);
  };
  for (const name of objects) {
    const m = PER_VIP.exec(name);
    if (m) add(m[1] as string, { kind: m[2] === 'live' ? 'set' : 'map', name });
  }
  for (const name of counters) add(name, { kind: 'counter', name });
  return out;
}

/**
 * The statements deleting the leftovers, before anything of this transaction adds them again: the maps and the set
 * of every VIP (one deletion each, however many elements: a flush would be one per element), the counter only of a
 * VIP not in `desired` (a desired one's counts on, `add counter` keeps it).
 */
export function deleteLeftovers(
  table: string,
  leftovers: ReadonlyMap<string, readonly LeftoverObject[]>,
  desired: ReadonlySet<string>,
): string[] {
  const out: string[] = [];
  for (const [key, objects] of leftovers) {
    for (const o of objects) {
      if (o.kind !== 'counter' || !desired.has(key)) out.push(`delete ${o.kind} netdev ${table} ${o.name}`);
    }
  }
  return out;
}

/**
 * The reverse: a VIP chain whose objects are not all there. The kernel refuses to delete a map, set or counter a rule
 * names, so this is a chain flushed by hand (or its rules deleted), then its slot map, overlay, live set or counter
 * deleted. The read listed the missing map and failed, at every apply and verify; a missing counter failed the `add rule`
 * naming it instead.
 */
export interface WithMissing {
  /**
   * readKernelState's addition to a VIP of the model (KernelVip): the names of its objects not in the table. Such a
   * VIP is read without rules (signature '') or slots (size 0); the plan adds the missing objects before its rules and
   * deletes none of them. Absent: none.
   */
  readonly missing?: ReadonlySet<string>;
}

/** The per-VIP objects of `key` (its slot map, overlay, live set and counter) not in `objects` or `counters`. */
export function findMissing(key: string, objects: ReadonlySet<string>, counters: ReadonlySet<string>): Set<string> {
  const maps = [slotsMap(key), overlayMap(key), liveSet(key)].filter((o) => !objects.has(o));
  return new Set(counters.has(key) ? maps : [...maps, key]);
}
