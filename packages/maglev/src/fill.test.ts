import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { fill, fillUniformTs, fillWeightedTs } from './fill.js';
import { fillWeightedGroupedTs } from './fill-grouped.js';
import { fillWasm, wasmAvailable } from './fill-wasm.js';

/** Random but valid inputs: prime size, n < size backends, cursor within range, skip in [1, size-1]. */
const inputs = fc
  .record({
    size: fc.constantFrom(13, 251, 4_093),
    n: fc.integer({ min: 1, max: 12 }),
    seed: fc.integer({ min: 1, max: 2 ** 31 - 1 }),
    weighted: fc.boolean(),
  })
  .map(({ size, n, seed, weighted }) => {
    let s = seed;
    const rnd = () => (s = (Math.imul(s, 48_271) + 11) >>> 0) / 2 ** 32;
    const cursor = new Int32Array(2 * n);
    const rate = new Float64Array(n);
    for (let k = 0; k < n; k++) {
      cursor[2 * k] = Math.floor(rnd() * size);
      cursor[2 * k + 1] = 1 + Math.floor(rnd() * (size - 1));
      rate[k] = weighted ? Math.max(0.05, rnd()) : 1;
    }
    rate[0] = 1;
    return { size, cursor, owner: Int32Array.from({ length: n }, (_, k) => 100 + k), rate, weighted };
  });

describe('maglev fill - the WebAssembly loop and the TypeScript reference agree slot by slot', () => {
  test('WebAssembly is available on Node 20 (the fast path is the one in use)', () => {
    expect(wasmAvailable()).toBe(true);
  });

  test('same owner in every slot and the same final cursors, uniform and weighted', () => {
    fc.assert(
      fc.property(inputs, ({ size, cursor, owner, rate, weighted }) => {
        const viaTs = new Int32Array(size).fill(-1);
        const tsCursor = cursor.slice();
        if (weighted) fillWeightedTs(viaTs, tsCursor, owner, rate);
        else fillUniformTs(viaTs, tsCursor, owner);
        const viaWasm = new Int32Array(size).fill(7); // prior content must not matter
        const wasmCursor = cursor.slice();
        fillWasm(viaWasm, wasmCursor, owner, weighted ? rate : undefined);
        expect(viaWasm).toEqual(viaTs);
        expect(wasmCursor).toEqual(tsCursor);
      }),
      { numRuns: 200 },
    );
  });

  test('a larger table after a smaller one grows the wasm memory and still agrees', () => {
    const owner = Int32Array.from([0, 1, 2]);
    for (const size of [13, 655_373]) {
      const cursor = Int32Array.from([0, 1, 5, 7, 9, 11]);
      const a = new Int32Array(size).fill(-1);
      fillUniformTs(a, cursor.slice(), owner);
      const b = new Int32Array(size);
      fillWasm(b, cursor.slice(), owner);
      expect(b).toEqual(a);
    }
  });
});

/** Rates as buildTable() makes them: weight / maxWeight. */
const ratesOf = (weights: readonly number[]): Float64Array => {
  const max = Math.max(...weights);
  return Float64Array.from(weights, (w) => w / max);
};

/** Cursors as in `inputs` above, for n backends in a table of `size` slots. */
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

/** Weight sets of the shapes that matter to the grouped loop: few classes, many, one class, float-tricky ratios. */
const weightSets = fc.oneof(
  // few distinct weights among many backends
  fc.array(fc.constantFrom(1, 2, 3), { minLength: 1, maxLength: 200 }),
  // many distinct weights
  fc.array(fc.integer({ min: 1, max: 65_535 }), { minLength: 1, maxLength: 200 }),
  // all equal (one class; not uniform unless the rate is 1, which it is: w / w)
  fc.tuple(fc.integer({ min: 1, max: 65_535 }), fc.integer({ min: 1, max: 200 })).map(([w, n]) => Array(n).fill(w)),
  // float-tricky ratios: thirds, sevenths, tenths, whose credit sums round
  fc.array(fc.constantFrom(3, 7, 10, 21, 30, 49, 70), { minLength: 1, maxLength: 200 }),
  // the pathological shape: one member at 65535 and many at 1 (rate 1/65535), anywhere in the order
  fc.tuple(fc.integer({ min: 1, max: 400 }), fc.nat()).map(([ones, at]) => {
    const w = Array(ones).fill(1);
    w.splice(at % (ones + 1), 0, 65_535);
    return w;
  }),
  // a mix: a few heavy distinct weights over a sea of equal light ones
  fc
    .tuple(fc.array(fc.integer({ min: 2, max: 65_535 }), { maxLength: 8 }), fc.integer({ min: 1, max: 200 }))
    .map(([heavy, ones]) => [...heavy, ...Array(ones).fill(1)]),
);

describe('maglev fill - the grouped weighted loop (one credit per distinct rate) is bit-identical to the reference', () => {
  test('same owner in every slot and the same final cursors as fillWeightedTs, random weight sets', () => {
    fc.assert(
      fc.property(
        weightSets,
        fc.constantFrom(13, 251, 4_093),
        fc.integer({ min: 1, max: 2 ** 31 - 1 }),
        (weights, size0, seed) => {
          // Backends must be fewer than slots (assertTableSize): grow the table past n when a set is large.
          const size = weights.length < size0 ? size0 : 4_093;
          fc.pre(weights.length < size);
          const n = weights.length;
          const rate = ratesOf(weights);
          const cursor = cursorsFor(size, n, seed);
          const owner = Int32Array.from({ length: n }, (_, k) => 100 + k);
          const ref = new Int32Array(size).fill(-1);
          const refCursor = cursor.slice();
          fillWeightedTs(ref, refCursor, owner, rate);
          const grouped = new Int32Array(size).fill(-1);
          const groupedCursor = cursor.slice();
          fillWeightedGroupedTs(grouped, groupedCursor, owner, rate);
          expect(grouped).toEqual(ref);
          expect(groupedCursor).toEqual(refCursor);
        },
      ),
      { numRuns: 300 },
    );
  });

  test('fill() takes the event-driven loop (claims in wasm; the grouped one claims in TypeScript) for one member at 65535 and 2,000 at 1, and builds the reference table', () => {
    const size = 4_093;
    const weights = [65_535, ...Array(2_000).fill(1)];
    const rate = ratesOf(weights);
    const cursor = cursorsFor(size, weights.length, 42);
    const owner = Int32Array.from({ length: weights.length }, (_, k) => k);
    const ref = new Int32Array(size).fill(-1);
    fillWeightedTs(ref, cursor.slice(), owner, rate);
    const table = new Int32Array(size);
    expect(fill(table, cursor.slice(), owner, rate)).toBe('wasm-events');
    expect(table).toEqual(ref);
  });

  test('fill() keeps the wasm loop where grouping saves little (distinct weights, or few rounds)', () => {
    const size = 4_093;
    const cases = [
      [1, 2, 3, 4, 5, 6, 7, 8], // every rate distinct
      Array.from({ length: 300 }, (_, k) => 1 + (k % 3)), // 3 classes but only ~20 rounds
    ];
    for (const weights of cases) {
      const rate = ratesOf(weights);
      const cursor = cursorsFor(size, weights.length, 7);
      const owner = Int32Array.from({ length: weights.length }, (_, k) => k);
      const ref = new Int32Array(size).fill(-1);
      fillWeightedTs(ref, cursor.slice(), owner, rate);
      const table = new Int32Array(size);
      expect(fill(table, cursor.slice(), owner, rate)).toBe('wasm-weighted');
      expect(table).toEqual(ref);
    }
  });
});
