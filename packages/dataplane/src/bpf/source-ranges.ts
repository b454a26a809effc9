/**
 * A VIP's `sourceRanges` in the bpf data plane: its prefixes are entries of l4f_src_ranges, an LPM trie keyed by
 * {32 + length, VIP id, address} (native/bpf/node-maps.h struct l4f_src_key), and the VIP entry's flag
 * L4F_VIP_SOURCE_RANGES makes the program look the source up there (one lookup; a VIP without the flag pays only
 * the flag test). This plans the trie's entries against what it holds: only the prefixes that differ are written,
 * never the VIP's slot table or its flows.
 *
 * The driver keeps the trie as, per VIP id, canonical prefix text -> rangeKey (codec-ranges.ts: the key's bytes, for a
 * delete). Desired prefixes arrive as canonical text (validate.ts refuses any other spelling), so an apply that
 * changes nothing compares strings and encodes nothing: at 16,384 prefixes a rangeKey per prefix and apply cost
 * ~10 ms of planning. The text of an entry read back from the kernel (whose key has no family) is made once, from
 * its VIP's family (codec-ranges.ts decodeRanges); under an id no VIP holds the text is the key itself, so a VIP
 * given that id back finds its prefix by key, not by text, and keeps the entry (neither added nor deleted).
 */
import { MAX_TOTAL_SOURCE_RANGES, type SourcePrefix } from '@l4fleet/config';
import { encodeSourceKey, type KernelRanges, rangeKey } from './codec.js';

/**
 * The trie's capacity (node-maps.h L4F_MAX_SOURCE_RANGES): twice MAX_TOTAL_SOURCE_RANGES, so an apply can add every
 * new prefix before it deletes the old ones.
 */
export const MAX_SOURCE_ENTRIES = 2 * MAX_TOTAL_SOURCE_RANGES;

/** What planRanges returns: the trie entries to add (key, value 1) and to delete (key), and the trie after them. */
export interface RangesPlan {
  readonly ups: Buffer[][];
  readonly downs: Buffer[][];
  /** The deletes must go before the adds: the union of old and new would not fit the trie (MAX_SOURCE_ENTRIES). */
  readonly deletesFirst: boolean;
  /** VIP ids whose prefixes change. */
  readonly changed: ReadonlySet<number>;
  readonly next: KernelRanges;
}

const ONE = Buffer.from([1, 0, 0, 0]);

/**
 * The entries that bring the trie from `kernel` to `want` (VIP id -> its `sourceRanges` as validate.ts parsed them,
 * or undefined: every source). Ids in `kernel` that no desired VIP holds (a removed VIP, or one an interrupted apply
 * left) lose every entry. A VIP whose prefixes are all there keeps its map as it is (no allocation).
 */
export function planRanges(
  kernel: KernelRanges,
  want: ReadonlyMap<number, readonly SourcePrefix[] | undefined>,
): RangesPlan {
  const ups: Buffer[][] = [];
  const downs: Buffer[][] = [];
  const changed = new Set<number>();
  const next: KernelRanges = new Map();
  for (const [id, prefixes] of want) {
    if (prefixes === undefined || prefixes.length === 0) continue;
    const have = kernel.get(id);
    if (have?.size === prefixes.length && prefixes.every((p) => have.has(p.text))) {
      next.set(id, have);
      continue;
    }
    // An entry read back under an id no VIP held is named by its key, not its prefix (codec-ranges.ts decodeRanges):
    // a prefix missing by text may still be there by key, and adding it would write the entry the deletes then remove.
    const haveKeys = have === undefined ? undefined : new Set(have.values());
    const mine = new Map<string, string>();
    for (const p of prefixes) {
      let k = have?.get(p.text);
      if (k === undefined) {
        k = rangeKey(p.bytes, p.length);
        if (!haveKeys?.has(k)) {
          ups.push([encodeSourceKey(id, k), ONE]);
          changed.add(id);
        }
      }
      mine.set(p.text, k);
    }
    next.set(id, mine);
  }
  let present = 0;
  for (const [id, have] of kernel) {
    present += have.size;
    const keep = next.get(id);
    if (keep === have) continue;
    // By key, whatever the name: never delete an entry the next state keeps, nor one entry twice.
    const done = new Set(keep?.values());
    for (const k of have.values()) {
      if (done.has(k)) continue;
      done.add(k);
      downs.push([encodeSourceKey(id, k)]);
      changed.add(id);
    }
  }
  return { ups, downs, deletesFirst: present + ups.length > MAX_SOURCE_ENTRIES, changed, next };
}
