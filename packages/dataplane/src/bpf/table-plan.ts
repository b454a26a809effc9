/**
 * One VIP's slot table in kernel form (backend ids instead of Maglev's backend indices), planned against the
 * table the maps hold, with the loader request built in place: a full table is one allocation (the request,
 * whose slot part the driver then keeps as its copy of the table), an unchanged table costs one comparing
 * pass and no allocation (a restart with nothing to change compares every table), a delta is one pass to
 * count, one to fill (slot indices, then ids: OP_TABLE_WRITE in native/bpf-loader/tables.c) and a copy of the table.
 */
import { NO_BACKEND } from '@l4fleet/maglev';
import { NO_BACKEND_ID } from './codec.js';

/** Backend id per Maglev backend index; NO_BACKEND (-1) maps to NO_BACKEND_ID. */
function idTable(ids: readonly number[]): Uint32Array {
  return Uint32Array.from(ids);
}

const kernelId = (slot: number, idOf: Uint32Array): number =>
  slot === NO_BACKEND ? NO_BACKEND_ID : (idOf[slot] as number);

export interface TableCreate {
  /** OP_TABLE_CREATE: u32 index, u32 size, size x u32 backend id. */
  readonly payload: Buffer;
  /** The table as written (a view of the payload's slot part). */
  readonly table: Uint32Array;
}

export function planTableCreate(index: number, slots: Int32Array, ids: readonly number[]): TableCreate {
  const n = slots.length;
  const mem = new ArrayBuffer(8 + 4 * n);
  const head = new Uint32Array(mem, 0, 2);
  head[0] = index;
  head[1] = n;
  const table = new Uint32Array(mem, 8, n);
  const idOf = idTable(ids);
  for (let s = 0; s < n; s++) table[s] = kernelId(slots[s] as number, idOf);
  return { payload: Buffer.from(mem), table };
}

export interface TableWrite {
  /** OP_TABLE_WRITE: u32 index, u32 n, n x u32 slot, n x u32 backend id. */
  readonly payload: Buffer;
  /** The table after the write (a new array: the kernel state the plan started from stays as it was). */
  readonly table: Uint32Array;
  readonly changed: number;
}

/** The write that turns `current` into `slots` (same length), or undefined when they already agree. */
export function planTableWrite(
  index: number,
  current: Uint32Array,
  slots: Int32Array,
  ids: readonly number[],
): TableWrite | undefined {
  const n = slots.length;
  if (current.length !== n) throw new RangeError(`table ${index}: ${current.length} slots, want ${n}`);
  const idOf = idTable(ids);
  let changed = 0;
  for (let s = 0; s < n; s++) if (current[s] !== kernelId(slots[s] as number, idOf)) changed += 1;
  if (changed === 0) return undefined;
  const mem = new ArrayBuffer(8 + 8 * changed);
  const head = new Uint32Array(mem, 0, 2);
  head[0] = index;
  head[1] = changed;
  const at = new Uint32Array(mem, 8, changed);
  const values = new Uint32Array(mem, 8 + 4 * changed, changed);
  const table = current.slice();
  for (let s = 0, i = 0; s < n; s++) {
    const id = kernelId(slots[s] as number, idOf);
    if (current[s] === id) continue;
    at[i] = s;
    values[i] = id;
    table[s] = id;
    i += 1;
  }
  return { payload: Buffer.from(mem), table, changed };
}
