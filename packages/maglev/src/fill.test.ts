import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { fillUniformTs, fillWeightedTs } from './fill.js';
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
