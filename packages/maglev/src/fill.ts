/**
 * The fill loop of Maglev table population (NSDI'16 §3.4, Pseudocode 1): backends take turns claiming their next
 * preferred free slot. It is the hot path (M claims, each probing a permutation), so it runs as WebAssembly
 * (wasm/fill.wat: ~1.5x faster than V8's code for the same loop at M = 65,537, the bench's fill-loop line; see
 * the package README); the TypeScript loops below are the reference the wasm is tested against slot by slot, and
 * the fallback where WebAssembly is unavailable (--jitless). Weighted pools of many members sharing few rates that
 * earn little a round take src/fill-grouped.ts instead (one credit per distinct rate; the same table), and pools
 * whose many rounds are mostly spent visiting credits that earn little (one member at the top weight over hundreds
 * of distinct small weights) src/fill-events.ts (turns scheduled class by class; the same table).
 */
import { claim } from './fill-claim.js';
import { eventsApply, eventsCost, fillWeightedEventsTs, fillWeightedEventsWasm } from './fill-events.js';
import { fillWeightedGroupedTs, groupingPays, rateClasses } from './fill-grouped.js';
import { fillWasm, wasmAvailable } from './fill-wasm.js';

/** Which loop filled the table (for tests and the bench; the table is the same whichever ran). */
export type FillPath =
  | 'wasm-uniform'
  | 'wasm-weighted'
  | 'wasm-events'
  | 'ts-uniform'
  | 'ts-weighted'
  | 'ts-grouped'
  | 'ts-events';

/**
 * The event-driven loop is taken only when its estimate is below this share of the chosen loop's: the estimates
 * are rough (a claim costs more or less with the table's cache behaviour), and where they are close the loop
 * fill() took before the event-driven one existed stays.
 */
export const EVENTS_MARGIN = 0.8;

/**
 * A claim, in the wasm per-backend loop's credit steps (~2-3.5 ns at M = 2,097,143): ~20 ns in wasm, ~120 ns in
 * TypeScript (cache misses on a 8 MiB table dominate; measured with npm run bench's pools).
 */
const WASM_CLAIM_STEPS = 10;
const TS_CLAIM_STEPS = 60;
/** The grouped loop's credit step, in the wasm loop's (TypeScript, and the batch sort of classes due together). */
const GROUPED_STEP_STEPS = 2;

/**
 * Fills `table` (its prior content is ignored). cursor[2k] / cursor[2k+1]: backend k's next slot and skip; owner[k]: the
 * value written for k; rate[k]: weight / maxWeight in (0, 1]. Weighted tables whose many backends share few rates
 * and earn little per round go through the grouped loop (src/fill-grouped.ts: one credit per distinct rate, the
 * same table); those where even that visits far more credits than turns are taken, through the event-driven loop
 * (src/fill-events.ts, where its estimate beats the chosen loop's by EVENTS_MARGIN); the rest through the wasm
 * loops, or the TypeScript ones where WebAssembly is unavailable. Every path builds the same table.
 */
export function fill(table: Int32Array, cursor: Int32Array, owner: Int32Array, rate: Float64Array): FillPath {
  let uniform = true;
  for (let k = 0; k < rate.length; k++) if (rate[k] !== 1) uniform = false;
  if (!uniform) {
    const classes = rateClasses(rate);
    const size = table.length;
    const grouped = groupingPays(size, rate, classes);
    if (eventsApply(rate)) {
      let perRound = 0;
      for (let k = 0; k < rate.length; k++) perRound += rate[k] as number;
      const rounds = size / perRound;
      const wasm = wasmAvailable();
      // The loop chosen so far, in wasm credit steps: rounds x classes and claims in TypeScript for the grouped
      // one, rounds x backends (and wasm claims) for the wasm one.
      const chosen = grouped
        ? GROUPED_STEP_STEPS * rounds * classes.rates.length + TS_CLAIM_STEPS * size
        : rounds * rate.length + WASM_CLAIM_STEPS * size;
      if (eventsCost(size, rate, classes, wasm ? WASM_CLAIM_STEPS : TS_CLAIM_STEPS) < EVENTS_MARGIN * chosen) {
        if (wasm) {
          fillWeightedEventsWasm(table, cursor, owner, rate, classes);
          return 'wasm-events';
        }
        fillWeightedEventsTs(table.fill(-1), cursor, owner, rate, classes);
        return 'ts-events';
      }
    }
    if (grouped) {
      fillWeightedGroupedTs(table.fill(-1), cursor, owner, rate, classes);
      return 'ts-grouped';
    }
  }
  if (wasmAvailable()) {
    fillWasm(table, cursor, owner, uniform ? undefined : rate);
    return uniform ? 'wasm-uniform' : 'wasm-weighted';
  }
  if (uniform) fillUniformTs(table.fill(-1), cursor, owner);
  else fillWeightedTs(table.fill(-1), cursor, owner, rate);
  return uniform ? 'ts-uniform' : 'ts-weighted';
}

// The TypeScript reference loops (the wasm module implements the same two).

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
