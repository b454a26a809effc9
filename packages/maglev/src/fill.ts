/**
 * The fill loop of Maglev table population (NSDI'16 §3.4, Pseudocode 1): backends take turns claiming their next
 * preferred free slot. It is the hot path (M claims, each probing a permutation), so it runs as WebAssembly
 * (wasm/fill.wat: ~1.5x faster than V8's code for the same loop at M = 65,537, the bench's fill-loop line; see
 * the package README); the TypeScript loops below are the reference the wasm is tested against slot by slot, and
 * the fallback where WebAssembly is unavailable (--jitless).
 */
import { fillWasm, wasmAvailable } from './fill-wasm.js';

/**
 * Fills `table` (its prior content is ignored). cursor[2k] / cursor[2k+1]: backend k's next slot and skip; owner[k]: the
 * value written for k; rate[k]: weight / maxWeight in (0, 1].
 */
export function fill(table: Int32Array, cursor: Int32Array, owner: Int32Array, rate: Float64Array): void {
  let uniform = true;
  for (let k = 0; k < rate.length; k++) if (rate[k] !== 1) uniform = false;
  if (wasmAvailable()) fillWasm(table, cursor, owner, uniform ? undefined : rate);
  else if (uniform) fillUniformTs(table.fill(-1), cursor, owner);
  else fillWeightedTs(table.fill(-1), cursor, owner, rate);
}

// The TypeScript reference loops (the wasm module implements the same two).

/** Backend k claims its next free preferred slot; returns true when that filled the table. */
function claim(table: Int32Array, cursor: Int32Array, owner: Int32Array, k: number, filled: number): boolean {
  const size = table.length;
  const s = cursor[2 * k + 1] as number;
  let p = cursor[2 * k] as number;
  while ((table[p] as number) !== -1) {
    p += s;
    if (p >= size) p -= size;
  }
  table[p] = owner[k] as number;
  p += s;
  cursor[2 * k] = p >= size ? p - size : p;
  return filled + 1 === size;
}

/** Equal weights: plain round robin of turns (Pseudocode 1). `table` must be all -1. */
export function fillUniformTs(table: Int32Array, cursor: Int32Array, owner: Int32Array): void {
  for (let filled = 0; ; ) {
    for (let k = 0; k < owner.length; k++, filled++) if (claim(table, cursor, owner, k, filled)) return;
  }
}

/** Weighted: each round a backend earns rate[k] credit and takes a turn per whole credit. `table` must be all -1. */
export function fillWeightedTs(table: Int32Array, cursor: Int32Array, owner: Int32Array, rate: Float64Array): void {
  const credit = new Float64Array(owner.length);
  for (let filled = 0; ; ) {
    for (let k = 0; k < owner.length; k++) {
      const c = (credit[k] as number) + (rate[k] as number);
      credit[k] = c < 1 ? c : c - 1;
      if (c >= 1 && claim(table, cursor, owner, k, filled++)) return;
    }
  }
}
