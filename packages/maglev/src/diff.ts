/**
 * Comparing two tables by backend *name*: indices mean nothing across membership changes, names do.
 * The data plane applies the diff as a delta (only the changed slots), which keeps its flow-affinity
 * state and costs milliseconds instead of a whole-map swap.
 */
import { MaglevError } from './errors.js';
import { NO_BACKEND } from './table.js';

/** A table with the backend names its indices refer to. */
export interface NamedTable {
  /** Names in the order buildTable() was given them. */
  readonly backends: readonly string[];
  /** buildTable()'s result: index into `backends`, or NO_BACKEND. */
  readonly slots: Int32Array;
}

export interface SlotChange {
  readonly slot: number;
  /** Owner before, or null when the slot had no backend. */
  readonly from: string | null;
  /** Owner after, or null when the slot has no backend. */
  readonly to: string | null;
}

export interface Churn {
  readonly changed: number;
  readonly size: number;
  /** changed / size: the share of new flows that now land on a different backend. */
  readonly fraction: number;
}

function ownerName(t: NamedTable, slot: number): string | null {
  const i = t.slots[slot] as number;
  return i === NO_BACKEND ? null : (t.backends[i] ?? null);
}

function assertSameSize(a: NamedTable, b: NamedTable): void {
  if (a.slots.length !== b.slots.length) {
    throw new MaglevError(
      'TABLE_MISMATCH',
      `tables: sizes ${a.slots.length} and ${b.slots.length} differ; every slot moves when the size changes`,
    );
  }
}

/** The slots whose owner differs between `a` and `b`, in slot order. */
export function diffTables(a: NamedTable, b: NamedTable): SlotChange[] {
  assertSameSize(a, b);
  const changes: SlotChange[] = [];
  // Resolve each index once instead of comparing strings per slot.
  const bIndexOfA = a.backends.map((name) => b.backends.indexOf(name));
  for (let s = 0; s < a.slots.length; s++) {
    const ia = a.slots[s] as number;
    const ib = b.slots[s] as number;
    const same = ia === NO_BACKEND ? ib === NO_BACKEND : bIndexOfA[ia] === ib;
    if (!same) changes.push({ slot: s, from: ownerName(a, s), to: ownerName(b, s) });
  }
  return changes;
}

/** How many slots change owner from `a` to `b`. */
export function churn(a: NamedTable, b: NamedTable): Churn {
  assertSameSize(a, b);
  const changed = diffTables(a, b).length;
  return { changed, size: a.slots.length, fraction: changed / a.slots.length };
}
