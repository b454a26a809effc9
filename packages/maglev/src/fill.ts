/**
 * The fill loop of Maglev table population (NSDI'16 §3.4, Pseudocode 1): backends take turns claiming their next
 * preferred free slot. It is the hot path (M claims, each probing a permutation), so it runs as WebAssembly
 * (wasm/fill.wat, ~2x faster than V8's code for the same loop, close to C); the TypeScript loops below are the
 * reference the wasm is tested against slot by slot, and the fallback where WebAssembly is unavailable (--jitless).
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

// The two fill loops are the hot path (M slot claims, each probing the backend's permutation for a free slot):
// kept as flat functions over typed arrays, with no closures, so V8 compiles them to tight machine code.

/** Equal weights: plain round robin of turns (Pseudocode 1). */
export function fillUniformTs(table: Int32Array, cursor: Int32Array, owner: Int32Array): void {
  const size = table.length;
  const n = owner.length;
  let filled = 0;
  for (;;) {
    for (let k = 0; k < n; k++) {
      const s = cursor[2 * k + 1] as number;
      let p = cursor[2 * k] as number;
      while ((table[p] as number) !== -1) {
        p += s;
        if (p >= size) p -= size;
      }
      table[p] = owner[k] as number;
      p += s;
      cursor[2 * k] = p >= size ? p - size : p;
      if (++filled === size) return;
    }
  }
}

/** Weighted: each round a backend earns weight/maxWeight credit and takes a turn per whole credit. */
export function fillWeightedTs(table: Int32Array, cursor: Int32Array, owner: Int32Array, rate: Float64Array): void {
  const size = table.length;
  const n = owner.length;
  const credit = new Float64Array(n);
  let filled = 0;
  for (;;) {
    for (let k = 0; k < n; k++) {
      const c = (credit[k] as number) + (rate[k] as number);
      if (c < 1) {
        credit[k] = c;
        continue;
      }
      credit[k] = c - 1;
      const s = cursor[2 * k + 1] as number;
      let p = cursor[2 * k] as number;
      while ((table[p] as number) !== -1) {
        p += s;
        if (p >= size) p -= size;
      }
      table[p] = owner[k] as number;
      p += s;
      cursor[2 * k] = p >= size ? p - size : p;
      if (++filled === size) return;
    }
  }
}
