/**
 * The weighted fill loop driven by turns instead of rounds. The reference loop (fillWeightedTs in src/fill.ts)
 * visits every backend every round, and src/fill-grouped.ts every distinct rate every round; with one member at
 * 65,535 and hundreds of distinct small weights (or slow-start steps of them) both make ~M / 2 rounds of hundreds of
 * visits: seconds per build at M = 2,097,143, on every node at every weight change and slow-start step.
 *
 * A rate class's credit depends only on its rate and its own turns, so the rounds in which it takes turns can be
 * computed class by class (src/fill-credit-walk.ts: exactly as the float64 reference adds, jumping many rounds at
 * once). Rounds are replayed in order: the class of rate 1 (the top weight) takes a turn in every round, the others
 * wait in a heap keyed by (round, class) for the round of their next turn; the members of the classes due in a round
 * claim in ascending index order, as in the reference loop, until the table is full. The same claims in the same
 * order: the same table and cursors, bit for bit. Cost: per turn of a class, ~log2(1 / rate) walk steps and a heap
 * operation, instead of rounds x classes. The turns are scheduled first, then claimed in that order by the wasm
 * module's claimTurns (fillWeightedEventsWasm; a TypeScript claim costs ~3x at M = 2,097,143) or in TypeScript.
 */
import { claim } from './fill-claim.js';
import { MIN_WALK_RATE, turnAfter } from './fill-credit-walk.js';
import { type RateClasses, rateClasses } from './fill-grouped.js';
import { fillWasmTurns } from './fill-wasm.js';

/** Whether fillWeightedEventsTs() takes these rates: all in [MIN_WALK_RATE, 1], at least one exactly 1. */
export function eventsApply(rate: Float64Array): boolean {
  let top = false;
  for (let k = 0; k < rate.length; k++) {
    const r = rate[k] as number;
    if (!(r >= MIN_WALK_RATE && r <= 1)) return false;
    if (r === 1) top = true;
  }
  return top;
}

/**
 * Estimated cost of the event-driven fill, in steps of the wasm per-backend loop (one backend's credit in one round,
 * ~2-3.5 ns), so fill() can weigh it against rounds x backends (wasm) and rounds x classes (grouped). Per slot a
 * claim (`claimSteps`: ~10 in wasm, ~60 in TypeScript at M = 2,097,143) and writing its turn (~3); per turn of a
 * class of rate r < 1 (~rounds x r of them) a fixed part, the walk's binades above 8r and the heap's levels. Fitted
 * on `npm run bench`-style pools at M = 2,097,143 (one member at 65,535 over 30-810 distinct weights, 100-2,000
 * members of weights 1..N, 1,000 random weights): it overestimates by up to ~40 %, so fill() errs toward the older
 * loops.
 */
export function eventsCost(size: number, rate: Float64Array, classes: RateClasses, claimSteps: number): number {
  let perRound = 0;
  for (let k = 0; k < rate.length; k++) perRound += rate[k] as number;
  const rounds = size / perRound;
  const heapSteps = EVENTS_STEPS_PER_HEAP_LEVEL * Math.log2(classes.rates.length + 1);
  let steps = (claimSteps + EVENTS_STEPS_PER_SLOT) * size;
  for (const r of classes.rates) {
    if (r === 1) continue;
    const binades = Math.max(0, -Math.log2(8 * r));
    const turns = Math.min(rounds * r, size) + 1;
    steps += turns * (EVENTS_STEPS_PER_TURN + EVENTS_STEPS_PER_BINADE * binades + heapSteps);
  }
  return steps;
}
/** See eventsCost(). */
const EVENTS_STEPS_PER_SLOT = 3;
/** See eventsCost(). */
const EVENTS_STEPS_PER_TURN = 30;
/** See eventsCost(). */
const EVENTS_STEPS_PER_BINADE = 20;
/** See eventsCost(). */
const EVENTS_STEPS_PER_HEAP_LEVEL = 8;

/**
 * Weighted fill by turns, claims in TypeScript; the same table and cursors as fillWeightedTs. `table` must be all -1;
 * `rate` must satisfy eventsApply(). `classes` defaults to rateClasses(rate).
 */
export function fillWeightedEventsTs(
  table: Int32Array,
  cursor: Int32Array,
  owner: Int32Array,
  rate: Float64Array,
  classes: RateClasses = rateClasses(rate),
): void {
  const turns = scheduleTurns(table.length, rate, classes);
  for (let i = 0; i < turns.length; i++) claim(table, cursor, owner, turns[i] as number, i);
}

/** The same with the claims in WebAssembly (src/fill-wasm.ts), ~3x faster a claim at M = 2,097,143. */
export function fillWeightedEventsWasm(
  table: Int32Array,
  cursor: Int32Array,
  owner: Int32Array,
  rate: Float64Array,
  classes: RateClasses = rateClasses(rate),
): void {
  fillWasmTurns(table, cursor, owner, scheduleTurns(table.length, rate, classes));
}

/**
 * The backend of each of the `size` turns that fill a table, in the reference loop's order (round ascending, then
 * index). `rate` must satisfy eventsApply(): a class of rate 1 takes a turn every round, so `size` turns come within
 * `size` rounds, and later turns are never computed.
 */
export function scheduleTurns(size: number, rate: Float64Array, classes: RateClasses = rateClasses(rate)): Int32Array {
  if (!eventsApply(rate)) throw new RangeError('rate: every rate must be in [2^-60, 1] and one of them exactly 1');
  const turns = new Int32Array(size);
  const { rates, start, members } = classes;
  const d = rates.length;
  const credit = new Float64Array(d);
  const left = new Float64Array(1);
  // Min-heap of round * d + class: rounds < size <= 2^21 and d <= 2^21, so keys are exact integers in float64.
  const heap = new Float64Array(d);
  let count = 0;
  const push = (key: number): void => {
    let i = count++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent] as number;
      if (p <= key) break;
      heap[i] = p;
      i = parent;
    }
    heap[i] = key;
  };
  const pop = (): number => {
    const top = heap[0] as number;
    const last = heap[--count] as number;
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= count) break;
      const right = child + 1;
      if (right < count && (heap[right] as number) < (heap[child] as number)) child = right;
      const c = heap[child] as number;
      if (c >= last) break;
      heap[i] = c;
      i = child;
    }
    heap[i] = last;
    return top;
  };
  // The last round that can matter: the class of rate 1 takes turns every round, so by round size - 1 it is full.
  // It stays out of the heap; the others are keyed by the round of their next turn.
  const lastRound = size - 1;
  let every = -1;
  for (let j = 0; j < d; j++) {
    const r = rates[j] as number;
    if (r === 1) {
      every = j;
      continue;
    }
    const after = turnAfter(0, r, lastRound + 1, left);
    if (after === Number.POSITIVE_INFINITY) continue;
    credit[j] = left[0] as number;
    push((after - 1) * d + j);
  }
  const everyFrom = start[every] as number;
  const everyTo = start[every + 1] as number;

  const due = new Int32Array(d);
  const batch = new Int32Array(rate.length);
  for (let round = 0, filled = 0; round <= lastRound; round++) {
    // The classes due this round besides the rate-1 one, their members gathered in batch.
    const next = (round + 1) * d;
    let f = 0;
    let len = 0;
    while (count > 0 && (heap[0] as number) < next) {
      const j = pop() - round * d;
      due[f++] = j;
      const to = start[j + 1] as number;
      for (let a = start[j] as number; a < to; a++) batch[len++] = members[a] as number;
    }
    if (f > 1) sortPrefix(batch, len); // one class's members are already ascending
    // Turns in index order, as in the reference loop: merge the rate-1 members with the batch.
    let a = everyFrom;
    let b = 0;
    while (a < everyTo || b < len) {
      const k = b >= len || (a < everyTo && (members[a] as number) < (batch[b] as number)) ? members[a++] : batch[b++];
      turns[filled++] = k as number;
      if (filled === size) return turns;
    }
    for (let i = 0; i < f; i++) {
      const j = due[i] as number;
      const after = turnAfter(credit[j] as number, rates[j] as number, lastRound - round, left);
      if (after === Number.POSITIVE_INFINITY) continue;
      credit[j] = left[0] as number;
      push((round + after) * d + j);
    }
  }
  throw new Error('maglev fill: the table was not full after size rounds (a rate-1 class takes a turn every round)');
}

/** Sorts a[0..len) ascending: insertion sort for the few turns of a typical round, the built-in sort past that. */
function sortPrefix(a: Int32Array, len: number): void {
  if (len > 32) {
    a.subarray(0, len).sort();
    return;
  }
  for (let i = 1; i < len; i++) {
    const v = a[i] as number;
    let k = i - 1;
    while (k >= 0 && (a[k] as number) > v) {
      a[k + 1] = a[k] as number;
      k--;
    }
    a[k + 1] = v;
  }
}
