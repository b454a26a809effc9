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

/**
 * What indexMap() gives a backend of `a` that `b` lacks: never a slot value of `b` (an index >= 0 or NO_BACKEND),
 * so its slots always count as moved. -1 was NO_BACKEND itself, and a pool losing its last backend (every slot
 * owned -> unowned) was predicted as no churn.
 */
const ABSENT_FROM_B = -2;

/**
 * For each index of `a`, the index of the same backend name in `b` (or ABSENT_FROM_B): one Map, so the cost is linear in the
 * backend count (an indexOf per name made a 50,000-member pool take seconds).
 */
function indexMap(a: NamedTable, b: NamedTable): Int32Array {
  const inB = new Map<string, number>();
  b.backends.forEach((name, i) => {
    inB.set(name, i);
  });
  const out = new Int32Array(a.backends.length);
  a.backends.forEach((name, i) => {
    out[i] = inB.get(name) ?? ABSENT_FROM_B;
  });
  return out;
}

function sameOwner(bIndexOfA: Int32Array, ia: number, ib: number): boolean {
  return ia === NO_BACKEND ? ib === NO_BACKEND : bIndexOfA[ia] === ib;
}

/** The slots whose owner differs between `a` and `b`, in slot order. */
export function diffTables(a: NamedTable, b: NamedTable): SlotChange[] {
  assertSameSize(a, b);
  const changes: SlotChange[] = [];
  // Resolve each index once instead of comparing strings per slot.
  const bIndexOfA = indexMap(a, b);
  for (let s = 0; s < a.slots.length; s++) {
    if (!sameOwner(bIndexOfA, a.slots[s] as number, b.slots[s] as number)) {
      changes.push({ slot: s, from: ownerName(a, s), to: ownerName(b, s) });
    }
  }
  return changes;
}

/** How many slots change owner from `a` to `b`; counts without building the change list. Linear in size + backends. */
export function churn(a: NamedTable, b: NamedTable): Churn {
  assertSameSize(a, b);
  const bIndexOfA = indexMap(a, b);
  let changed = 0;
  for (let s = 0; s < a.slots.length; s++) {
    if (!sameOwner(bIndexOfA, a.slots[s] as number, b.slots[s] as number)) changed += 1;
  }
  return { changed, size: a.slots.length, fraction: changed / a.slots.length };
}
