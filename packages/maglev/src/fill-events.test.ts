import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { fill, fillWeightedTs } from './fill.js';
import { MIN_WALK_RATE, turnAfter } from './fill-credit-walk.js';
import { eventsApply, fillWeightedEventsTs, fillWeightedEventsWasm } from './fill-events.js';

/** The reference loop's credit steps for one backend, one round at a time. */
function naiveTurnAfter(c0: number, rate: number, limit: number): { rounds: number; left: number } {
  let c = c0;
  for (let rounds = 1; rounds <= limit; rounds++) {
    const next = c + rate;
    if (next >= 1) return { rounds, left: next - 1 };
    c = next;
  }
  return { rounds: Number.POSITIVE_INFINITY, left: Number.NaN };
}

/** An odd integer below 2^53 from two random parts (fast-check's doubles rarely have full 53-bit mantissas). */
const odd53 = fc
  .tuple(fc.integer({ min: 0, max: 2 ** 26 - 1 }), fc.integer({ min: 0, max: 2 ** 27 - 1 }))
  .map(([hi, lo]) => hi * 2 ** 27 + (lo | 1));

/**
 * Rates whose additions hit half-ulp ties: r = odd * 2^-p with p >= 54 has its lowest bit at half the ulp of the
 * credits in [2^(53-p), 2^(54-p)), so in that binade c + r is exactly halfway and rounds to even.
 */
const tieRate = fc
  .tuple(odd53, fc.integer({ min: 54, max: 76 }))
  .map(([odd, p]) => odd * 2 ** -p)
  .filter((r) => r >= 2 ** -22 && r < 1);

/** Slow-start fractions of integer weights over a top of 65,535, as the aggregator and etcd give them. */
const slowStartRate = fc
  .tuple(
    fc.integer({ min: 1, max: 65_535 }),
    fc.oneof(
      fc.constantFrom(0.2, 0.4, 0.6, 0.8),
      fc.integer({ min: 1, max: 99 }).map((p) => p / 100),
    ),
    fc.boolean(),
  )
  .map(([w, f, percentFirst]) => (percentFirst ? (w * (f * 100)) / 100 : w * f) / 65_535);

const anyRate = fc.oneof(
  tieRate,
  slowStartRate,
  fc.integer({ min: 1, max: 65_535 }).map((w) => w / 65_535),
  fc.double({ min: 2 ** -20, max: 1, noNaN: true }),
  fc.constantFrom(1, 0.5, 0.1, 1 / 3, 2 / 3, 0.7, 1 - 2 ** -53, 2 ** -20, 0.2 / 65_535),
);

describe('maglev fill - turnAfter() takes the credit to its next turn exactly as the reference adds', () => {
  test('same rounds and same credit left as one addition a round, from random credits', () => {
    fc.assert(
      fc.property(anyRate, fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }), (rate, c0) => {
        const c = c0 < MIN_WALK_RATE ? 0 : c0;
        const want = naiveTurnAfter(c, rate, 2_000_000);
        const left = new Float64Array(1);
        const rounds = turnAfter(c, rate, 2_000_000, left);
        expect(rounds).toBe(want.rounds);
        if (rounds !== Number.POSITIVE_INFINITY) expect(Object.is(left[0], want.left)).toBe(true);
      }),
      { numRuns: 3_000 },
    );
  });

  test('a sequence of turns follows the reference credit bit for bit (credit after each turn feeds the next)', () => {
    fc.assert(
      fc.property(anyRate, (rate) => {
        const left = new Float64Array(1);
        let c = 0;
        for (let turn = 0; turn < 20; turn++) {
          const want = naiveTurnAfter(c, rate, 3_000_000);
          const rounds = turnAfter(c, rate, 3_000_000, left);
          expect(rounds).toBe(want.rounds);
          if (rounds === Number.POSITIVE_INFINITY) return;
          expect(Object.is(left[0], want.left)).toBe(true);
          c = left[0] as number;
        }
      }),
      { numRuns: 300 },
    );
  });

  test('a tie from an odd and from an even credit: r = 2^-54 at c = 0.5 + 2^-53 rounds up, at c = 0.5 never grows', () => {
    const left = new Float64Array(1);
    // 0.5 + 2^-53 (odd m) + 2^-54 ties to 0.5 + 2^-52 (even m); from then on every addition rounds back: no turn.
    expect(turnAfter(0.5 + 2 ** -53, 2 ** -54, 1_000, left)).toBe(Number.POSITIVE_INFINITY);
    expect(naiveTurnAfter(0.5 + 2 ** -53, 2 ** -54, 1_000).rounds).toBe(Number.POSITIVE_INFINITY);
    // 3 * 2^-54 at 0.5: x = 1.5 ties; from even m each round adds 2 ulps.
    const rate = 3 * 2 ** -54;
    const want = naiveTurnAfter(1 - 2 ** -45, rate, 10_000);
    expect(turnAfter(1 - 2 ** -45, rate, 10_000, left)).toBe(want.rounds);
    expect(left[0]).toBe(want.left);
  });

  test('more rounds than the limit, or a rate too small to move the credit, is Infinity', () => {
    const left = new Float64Array(1);
    expect(turnAfter(0, 1 / 65_535, 65_534, left)).toBe(Number.POSITIVE_INFINITY);
    expect(turnAfter(0, 1 / 65_535, 65_535, left)).toBe(naiveTurnAfter(0, 1 / 65_535, 65_535).rounds);
    expect(turnAfter(0.75, 2 ** -60, 1e18, left)).toBe(Number.POSITIVE_INFINITY);
  });
});

/** Cursors spread by a multiplicative hash (murmur3's are as spread), for n backends in a table of `size` slots. */
function cursorsFor(size: number, n: number, seed: number): Int32Array {
  let s = seed;
  const rnd = () => (s = (Math.imul(s, 48_271) + 11) >>> 0) / 2 ** 32;
  const cursor = new Int32Array(2 * n);
  for (let k = 0; k < n; k++) {
    cursor[2 * k] = Math.floor(rnd() * size);
    cursor[2 * k + 1] = 1 + Math.floor(rnd() * (size - 1));
  }
  return cursor;
}

/** Runs the reference loop and the event-driven one on the same input; both tables and cursors must be equal. */
function expectSameAsReference(size: number, rate: Float64Array, seed: number): void {
  const n = rate.length;
  const cursor = cursorsFor(size, n, seed);
  const owner = Int32Array.from({ length: n }, (_, k) => 100 + k);
  const ref = new Int32Array(size).fill(-1);
  const refCursor = cursor.slice();
  fillWeightedTs(ref, refCursor, owner, rate);
  for (const run of [fillWeightedEventsTs, fillWeightedEventsWasm]) {
    const events = new Int32Array(size).fill(-1);
    const eventsCursor = cursor.slice();
    run(events, eventsCursor, owner, rate);
    expect(Buffer.from(events.buffer).equals(Buffer.from(ref.buffer))).toBe(true);
    expect(Buffer.from(eventsCursor.buffer).equals(Buffer.from(refCursor.buffer))).toBe(true);
  }
}

/** Rates as buildTable() makes them: weight / maxWeight. */
const ratesOf = (weights: readonly number[]): Float64Array => {
  const max = Math.max(...weights);
  return Float64Array.from(weights, (w) => w / max);
};

/** Weight sets: integer weights, slow-start steps of them, tie-crafted rates, tiny and equal ones. */
const weightSets = fc.oneof(
  fc.array(fc.integer({ min: 1, max: 65_535 }), { minLength: 1, maxLength: 120 }),
  fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 120 }),
  // slow start: some members at w * 0.2 / 0.4 / 0.6 / 0.8 or at w * p / 100, next to whole weights
  fc
    .array(
      fc.tuple(
        fc.integer({ min: 1, max: 65_535 }),
        fc.oneof(
          fc.constant(1),
          fc.constantFrom(0.2, 0.4, 0.6, 0.8),
          fc.integer({ min: 1, max: 99 }).map((p) => p / 100),
        ),
      ),
      { minLength: 1, maxLength: 120 },
    )
    .map((ws) => ws.map(([w, f]) => w * f)),
  // tie-crafted rates directly (top weight 1)
  fc.array(tieRate, { minLength: 1, maxLength: 60 }).map((rs) => [1, ...rs]),
  // arbitrary doubles, a few tiny
  fc
    .array(fc.oneof(fc.double({ min: 2 ** -40, max: 1, noNaN: true }), fc.constant(2 ** -59)), {
      minLength: 1,
      maxLength: 60,
    })
    .map((rs) => [1, ...rs]),
  // the reviewer's shapes, small: one member at 65,535 over distinct small weights (or their 20 % steps)
  fc.integer({ min: 1, max: 120 }).map((d) => [65_535, ...Array.from({ length: d }, (_, i) => i + 1)]),
  fc.integer({ min: 1, max: 120 }).map((d) => [65_535, ...Array.from({ length: d }, (_, i) => ((i + 1) * 20) / 100)]),
  // equal weights (one class, rate 1) and a heavy member among many equal light ones
  fc.tuple(fc.integer({ min: 1, max: 65_535 }), fc.integer({ min: 1, max: 200 })).map(([w, n]) => Array(n).fill(w)),
  fc.tuple(fc.integer({ min: 1, max: 300 }), fc.nat()).map(([ones, at]) => {
    const w = Array(ones).fill(1);
    w.splice(at % (ones + 1), 0, 65_535);
    return w;
  }),
);

describe('maglev fill - the event-driven weighted loop is bit-identical to the reference loop', () => {
  test('same table and cursors as fillWeightedTs, byte for byte, on adversarial weight sets', () => {
    fc.assert(
      fc.property(
        weightSets,
        fc.constantFrom(13, 251, 4_093),
        fc.integer({ min: 1, max: 2 ** 31 - 1 }),
        (w, m, seed) => {
          const size = w.length < m ? m : 4_093;
          fc.pre(w.length < size);
          expectSameAsReference(size, ratesOf(w), seed);
        },
      ),
      { numRuns: 400 },
    );
  });

  test('n = 1, and n = M - 1 (the table fills in the middle of a round)', () => {
    expectSameAsReference(13, Float64Array.of(1), 1);
    expectSameAsReference(4_093, Float64Array.of(1), 2);
    for (const seed of [3, 4, 5]) {
      expectSameAsReference(251, ratesOf(Array.from({ length: 250 }, (_, i) => 1 + (i % 7))), seed);
      expectSameAsReference(251, ratesOf(Array.from({ length: 250 }, () => 1)), seed);
      expectSameAsReference(13, ratesOf([3, 1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2]), seed);
    }
  });

  test("the reviewer's three shapes at M = 8,191", () => {
    const size = 8_191;
    expectSameAsReference(size, ratesOf([65_535, ...Array.from({ length: 361 }, (_, i) => i + 1)]), 11);
    expectSameAsReference(size, ratesOf([65_535, ...Array.from({ length: 810 }, (_, i) => ((i + 1) * 20) / 100)]), 12);
    const mixed = [65_535, ...Array.from({ length: 447 }, (_, i) => i + 1), ...Array(3_000).fill(1)];
    expectSameAsReference(size, ratesOf(mixed), 13);
  });

  test('eventsApply(): a rate of 1 is needed, and none below 2^-60', () => {
    expect(eventsApply(Float64Array.of(1, 0.5))).toBe(true);
    expect(eventsApply(Float64Array.of(0.9, 0.5))).toBe(false);
    expect(eventsApply(Float64Array.of(1, 2 ** -61))).toBe(false);
    expect(() =>
      fillWeightedEventsTs(new Int32Array(13).fill(-1), new Int32Array(2), Int32Array.of(0), Float64Array.of(0.5)),
    ).toThrow(RangeError);
  });

  test('fill() builds the reference table whichever path it picks for the shapes above', () => {
    const size = 8_191;
    const sets = [
      [65_535, ...Array.from({ length: 361 }, (_, i) => i + 1)],
      [65_535, ...Array.from({ length: 810 }, (_, i) => ((i + 1) * 20) / 100)],
      [1, 2, 3],
      [65_535, ...Array(2_000).fill(1)],
    ];
    for (const w of sets) {
      const rate = ratesOf(w);
      const cursor = cursorsFor(size, w.length, 9);
      const owner = Int32Array.from({ length: w.length }, (_, k) => k);
      const ref = new Int32Array(size).fill(-1);
      fillWeightedTs(ref, cursor.slice(), owner, rate);
      const table = new Int32Array(size);
      fill(table, cursor.slice(), owner, rate);
      expect(table).toEqual(ref);
    }
  });

  test('fill() takes the event-driven loop for one member at 65,535 over small weights, not where rounds are few', () => {
    const size = 65_537;
    const pick = (w: number[]): string =>
      fill(
        new Int32Array(size),
        cursorsFor(size, w.length, 5),
        Int32Array.from({ length: w.length }, (_, k) => k),
        ratesOf(w),
      );
    expect(pick([65_535, ...Array.from({ length: 361 }, (_, i) => i + 1)])).toBe('wasm-events');
    expect(pick([65_535, ...Array.from({ length: 810 }, (_, i) => ((i + 1) * 20) / 100)])).toBe('wasm-events');
    expect(pick(Array.from({ length: 1_000 }, (_, i) => 1 + (i % 3)))).toBe('wasm-weighted');
    expect(pick([65_535, ...Array(19_999).fill(1)])).toBe('wasm-events');
    expect(pick(Array.from({ length: 2_000 }, (_, i) => i + 1))).toBe('wasm-weighted');
  });
});
