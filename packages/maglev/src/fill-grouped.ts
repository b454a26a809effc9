/**
 * The weighted fill loop with one credit per distinct rate instead of one per backend. The reference loop
 * (fillWeightedTs in src/fill.ts, and wasm/fill.wat) visits every backend every round; with one member at weight
 * 65,535 and 19,999 at 1 the light ones earn 1/65,535 a round, so filling 65,537 slots takes ~50,000 rounds of
 * 20,000 visits (~10^9 steps, seconds per build on every agent). Backend k's credit sequence
 * (`c = credit + rate; credit = c < 1 ? c : c - 1; turn if c >= 1`, in float64) depends only on rate[k], so
 * backends of equal rate take their turns in exactly the same rounds, and within a round turns go in index order.
 * Simulating one credit per rate class and letting the firing classes' members claim in ascending index order gives
 * the same claims in the same order: the same table and cursors, bit for bit (every node of a fleet, of any version,
 * must build the same table). Cost: rounds x classes credit steps instead of rounds x backends.
 */
import { claim } from './fill-claim.js';

/** Backends grouped by rate value (Float64 equality): class j has rate rates[j] and members[start[j]..start[j+1]). */
export interface RateClasses {
  readonly rates: Float64Array;
  readonly start: Int32Array;
  /** Backend indexes, ascending within each class. */
  readonly members: Int32Array;
}

export function rateClasses(rate: Float64Array): RateClasses {
  const n = rate.length;
  const classOf = new Int32Array(n);
  const index = new Map<number, number>(); // SameValueZero: equal to === for rates in (0, 1]
  const counts: number[] = [];
  const rates: number[] = [];
  for (let k = 0; k < n; k++) {
    const r = rate[k] as number;
    let j = index.get(r);
    if (j === undefined) {
      j = rates.length;
      index.set(r, j);
      rates.push(r);
      counts.push(0);
    }
    classOf[k] = j;
    counts[j] = (counts[j] as number) + 1;
  }
  const d = rates.length;
  const start = new Int32Array(d + 1);
  for (let j = 0; j < d; j++) start[j + 1] = (start[j] as number) + (counts[j] as number);
  const next = start.slice(0, d);
  const members = new Int32Array(n);
  // Placed in index order, so each class's slice is ascending.
  for (let k = 0; k < n; k++) {
    const j = classOf[k] as number;
    members[next[j] as number] = k;
    next[j] = (next[j] as number) + 1;
  }
  return { rates: Float64Array.from(rates), start, members };
}

/**
 * See groupingPays(). Measured at M = 65,537 (one member at weight w, the rest at 1): the wasm loop and the grouped
 * one break even near 24 saved steps a slot (100 members, w = 32: 2.7 ms each); at 2 the wasm is 1.8x faster, at
 * 113 the grouped is 3.2x faster, and the gap grows with the saving (see the package README).
 */
export const GROUPING_MIN_SAVED_STEPS_PER_SLOT = 24;

/**
 * Whether the grouped loop pays: it saves rounds x (backends - classes) credit steps, and costs, for claims that
 * run in TypeScript rather than wasm (~1.5x slower a claim) and for sorting the members of several classes that
 * fire in one round, a few steps per slot. Rounds ~ size / (sum of rates), the turns taken per round.
 */
export function groupingPays(size: number, rate: Float64Array, classes: RateClasses): boolean {
  const n = rate.length;
  const d = classes.rates.length;
  if (d === n) return false;
  let perRound = 0;
  for (let k = 0; k < n; k++) perRound += rate[k] as number;
  const rounds = size / perRound;
  return rounds * (n - d) > GROUPING_MIN_SAVED_STEPS_PER_SLOT * size;
}

/**
 * Weighted fill, one credit per rate class; the same table and cursors as fillWeightedTs. `table` must be all -1.
 * `classes` defaults to rateClasses(rate).
 */
export function fillWeightedGroupedTs(
  table: Int32Array,
  cursor: Int32Array,
  owner: Int32Array,
  rate: Float64Array,
  classes: RateClasses = rateClasses(rate),
): void {
  const { rates, start, members } = classes;
  const d = rates.length;
  const credit = new Float64Array(d);
  const firing = new Int32Array(d);
  const batch = new Int32Array(owner.length);
  for (let filled = 0; ; ) {
    let f = 0;
    for (let j = 0; j < d; j++) {
      const c = (credit[j] as number) + (rates[j] as number);
      credit[j] = c < 1 ? c : c - 1;
      if (c >= 1) firing[f++] = j;
    }
    if (f === 0) continue;
    let turns: Int32Array;
    if (f === 1) {
      const j = firing[0] as number;
      turns = members.subarray(start[j], start[j + 1]);
    } else {
      // Several classes fire: their members take turns in index order, as in the reference loop.
      let len = 0;
      for (let i = 0; i < f; i++) {
        const j = firing[i] as number;
        const from = start[j] as number;
        const to = start[j + 1] as number;
        batch.set(members.subarray(from, to), len);
        len += to - from;
      }
      turns = batch.subarray(0, len).sort();
    }
    for (let i = 0; i < turns.length; i++) if (claim(table, cursor, owner, turns[i] as number, filled++)) return;
  }
}
