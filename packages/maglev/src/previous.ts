/**
 * Previous owners (second chance, docs/design/0011-second-chance.md; GLB Director's primary/secondary rows,
 * Unimog's daisy chaining): per slot, the backend that owned the slot before the last table change that moved it.
 * A node that receives a flow it has never seen sends it to the slot's current owner and names the previous owner
 * in the packet, so a backend without a socket for the flow can hand it on (the flow began before the change).
 *
 * Tables are compared newest first: for each slot the first earlier table whose owner differs from the current
 * one holds the owner just before the last move (A -> B -> A gives B; A -> B -> B gives A). Index spaces differ
 * between tables (members come and go), so each earlier table brings the map of its indices into the output's.
 */
import { MaglevError } from './errors.js';
import { NO_BACKEND } from './table.js';

/** One earlier table, newest first in the list given to previousOwners(). */
export interface EarlierTable {
  /** buildTable()'s result for that table's backends; must have the current table's size. */
  readonly slots: Int32Array;
  /** Index in the earlier table's backends -> index in the output's index space, or NO_BACKEND (not carried). */
  readonly toIndex: Int32Array;
}

/**
 * The previous owner of every slot of `current`: an index in the output's index space (`current` uses it too), or
 * NO_BACKEND where no earlier table had another owner (or the earlier owner is not carried). Linear in slots x
 * tables, no allocation but the result.
 */
export function previousOwners(current: Int32Array, earlier: readonly EarlierTable[]): Int32Array {
  const out = new Int32Array(current.length).fill(NO_BACKEND);
  earlier.forEach((t, i) => {
    if (t.slots.length !== current.length) {
      throw new MaglevError(
        'TABLE_MISMATCH',
        `earlier[${i}].slots: ${t.slots.length} slots, the current table has ${current.length}`,
      );
    }
  });
  const open = new Uint8Array(current.length).fill(1);
  let remaining = current.length;
  for (const t of earlier) {
    if (remaining === 0) break;
    for (let s = 0; s < current.length; s++) {
      if (open[s] === 0) continue;
      const before = t.slots[s] as number;
      const owner = before === NO_BACKEND ? NO_BACKEND : ((t.toIndex[before] as number | undefined) ?? NO_BACKEND);
      if (owner === (current[s] as number)) continue;
      // The slot moved here. The earlier owner may be unknown (no backend then, or not carried): still the
      // last move, so the slot is settled without a previous owner rather than one from an older table.
      open[s] = 0;
      remaining -= 1;
      out[s] = owner;
    }
  }
  return out;
}
