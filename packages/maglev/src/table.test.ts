import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { churn, diffTables } from './diff.js';
import { MaglevError } from './errors.js';
import { tableStats } from './stats.js';
import { type BackendSpec, buildNamedTable, buildTable, NO_BACKEND } from './table.js';

const names = (n: number, prefix = 'be'): BackendSpec[] =>
  Array.from({ length: n }, (_, i) => ({ name: `${prefix}${i}` }));

function shuffled<T>(items: readonly T[], seed: number): T[] {
  const out = [...items];
  let s = seed >>> 0 || 1;
  for (let i = out.length - 1; i > 0; i--) {
    s = (Math.imul(s, 1_103_515_245) + 12_345) >>> 0;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

/** Owner names per slot: comparable across different argument orders. */
const owners = (backends: readonly BackendSpec[], size: number): string[] =>
  Array.from(buildTable(backends, size), (i) => (i === NO_BACKEND ? '' : (backends[i] as BackendSpec).name));

describe('maglev table - paper promises (NSDI16 §3.4)', () => {
  test('spread (max - min slots) is at most 1 at equal weights', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 60 }), fc.constantFrom(61, 251, 1_021, 4_093, 65_537), (n, size) => {
        const stats = tableStats(buildNamedTable(names(n), size));
        expect(stats.spread).toBeLessThanOrEqual(1);
        expect(stats.empty).toBe(0);
      }),
      { numRuns: 60 },
    );
  });

  test('removing one of 100 backends at M = 65,537 moves at most 2% of slots, including all of its own', () => {
    const all = names(100);
    const before = buildNamedTable(all, 65_537);
    for (const removed of ['be0', 'be42', 'be99']) {
      const after = buildNamedTable(
        all.filter((b) => b.name !== removed),
        65_537,
      );
      const changes = diffTables(before, after);
      const own = tableStats(before).slotsPerBackend[removed] as number;
      expect(changes.filter((c) => c.from === removed)).toHaveLength(own);
      expect(changes.every((c) => c.to !== removed)).toBe(true);
      expect(churn(before, after).fraction).toBeLessThanOrEqual(0.02);
    }
  });

  test('adding one backend to 100 moves at most 2% of slots, all of them to the new backend or near it', () => {
    const before = buildNamedTable(names(100), 65_537);
    const after = buildNamedTable([...names(100), { name: 'new' }], 65_537);
    const moved = diffTables(before, after);
    expect(moved.length / 65_537).toBeLessThanOrEqual(0.02);
    expect(moved.filter((c) => c.to === 'new').length).toBe(tableStats(after).slotsPerBackend.new);
  });

  test('the owner of each slot does not depend on the order of the backends', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.string({ minLength: 1, maxLength: 12 }), { minLength: 1, maxLength: 30 }),
        fc.array(fc.integer({ min: 0, max: 5 }), { minLength: 30, maxLength: 30 }),
        fc.integer(),
        (ns, ws, seed) => {
          const backends = ns.map((name, i) => ({ name, weight: ws[i] as number }));
          expect(owners(shuffled(backends, seed), 1_021)).toEqual(owners(backends, 1_021));
        },
      ),
      { numRuns: 100 },
    );
  });

  test('weights: weight 3 gets 3x the slots of weight 1, within 1%', () => {
    const backends = [{ name: 'heavy', weight: 3 }, ...names(9)];
    const stats = tableStats(buildNamedTable(backends, 65_537));
    const light = (stats.slotsPerBackend.be0 as number) + (stats.slotsPerBackend.be5 as number);
    const ratio = (stats.slotsPerBackend.heavy as number) / (light / 2);
    expect(ratio).toBeGreaterThan(3 * 0.99);
    expect(ratio).toBeLessThan(3 * 1.01);
  });

  test.each([[[1, 2, 3, 4]], [[0.5, 1.5]], [[1, 100]], [[7, 7, 1]]])(
    'weights %j: every share is proportional within 1%',
    (weights) => {
      const backends = weights.map((weight, i) => ({ name: `w${i}`, weight }));
      const total = weights.reduce((s, w) => s + w, 0);
      const stats = tableStats(buildNamedTable(backends, 65_537));
      backends.forEach((b) => {
        const expected = (65_537 * (b.weight as number)) / total;
        expect(Math.abs((stats.slotsPerBackend[b.name] as number) - expected) / expected).toBeLessThan(0.01);
      });
    },
  );

  test('weights: next to a heavy backend, removing a light one still moves little more than its own slots', () => {
    // Giving a heavy backend its whole share in its first turn lets it grab contested slots early, so any
    // membership change reshuffles far more than the removed backend's share. With interleaved turns the
    // disruption stays what the paper reports for equal weights (within ~10% of the removed share here).
    const backends = [{ name: 'heavy', weight: 10 }, ...names(20)];
    const before = buildNamedTable(backends, 65_537);
    const after = buildNamedTable(
      backends.filter((b) => b.name !== 'be7'),
      65_537,
    );
    const own = tableStats(before).slotsPerBackend.be7 as number;
    expect(diffTables(before, after).length).toBeLessThanOrEqual(own * 1.2);
  });

  test('weight 0 gets no slots but keeps its index; all weights 0 gives an empty table', () => {
    const stats = tableStats(buildNamedTable([{ name: 'a' }, { name: 'drain', weight: 0 }, { name: 'b' }], 251));
    expect(stats.slotsPerBackend.drain).toBe(0);
    expect(stats.slotsPerBackend.a! + stats.slotsPerBackend.b!).toBe(251);
    const empty = buildTable([{ name: 'a', weight: 0 }], 13);
    expect(Array.from(empty).every((i) => i === NO_BACKEND)).toBe(true);
    expect(Array.from(buildTable([], 13)).every((i) => i === NO_BACKEND)).toBe(true);
  });

  test('determinism: the same input gives the same table in every run, process and machine (golden checksum)', () => {
    const table = buildTable([...names(50), { name: 'heavy', weight: 4 }, { name: 'ü-ñame', weight: 0.5 }], 65_537);
    const digest = createHash('sha256').update(Buffer.from(table.buffer)).digest('hex');
    // Changing this value changes every fleet's table: a flag day for running fleets, never a casual edit.
    expect(digest).toBe(GOLDEN_SHA256);
  });
});

describe('maglev table - weights and the top weight (README "Weights: keep the top weight fixed")', () => {
  // Pool of 1,000 with weights 1, 2, 3 in turn; backend-0 has weight 1. The README and the operator guide quote
  // these figures: a change here changes every weighted table (the golden checksum) and needs the docs updated.
  const cycled = (n: number): number[] => Array.from({ length: n }, (_, i) => (i % 3) + 1);
  const pool = (ws: readonly number[]): BackendSpec[] => ws.map((weight, i) => ({ name: `backend-${i}`, weight }));
  const movedPct = (a: readonly number[], b: readonly number[], size: number): number =>
    Number((100 * churn(buildNamedTable(pool(a), size), buildNamedTable(pool(b), size)).fraction).toFixed(2));
  const withWeight = (ws: readonly number[], i: number, w: number): number[] => ws.map((x, j) => (j === i ? w : x));

  test.each([2, 3, 10, 1_000])('only ratios matter: weights times %i build the identical table', (k) => {
    // rate = weight / top weight, and IEEE division is correctly rounded, so (k w) / (k top) is the same double.
    for (const ws of [cycled(60), Array.from({ length: 60 }, () => 1), [1, 7, 7, 250, 3]]) {
      expect(owners(pool(ws.map((w) => w * k)), 4_093)).toEqual(owners(pool(ws), 4_093));
    }
  });

  test('moving the top weight reshuffles members of differing weights: 1 -> 4 moves 2.55% (top 3 -> 4), 0.93% (top stays 4)', () => {
    const ws = cycled(1_000);
    const withFour = withWeight(ws, 999, 4);
    expect(movedPct(ws, withWeight(ws, 0, 3), 65_537)).toBe(0.68); // top stays 3; ideal 0.10%
    expect(movedPct(ws, withWeight(ws, 0, 4), 65_537)).toBe(2.55); // top 3 -> 4; ideal 0.15%
    expect(movedPct(withFour, withWeight(withFour, 0, 4), 65_537)).toBe(0.93); // a 4 already there; ideal 0.15%
    expect(movedPct(withFour, withWeight(withFour, 999, 0), 65_537)).toBe(2.63); // drain the only 4; ideal 0.20%
  });

  test('members that all share one weight keep their turn order when the top moves: draining the only 10 costs no extra', () => {
    const one10 = Array.from({ length: 1_000 }, (_, i) => (i === 0 ? 10 : 1));
    const two10 = withWeight(one10, 1, 10);
    const dropOnly = movedPct(one10, withWeight(one10, 0, 0), 65_537); // top 10 -> 1; ideal 0.99%
    const dropOneOfTwo = movedPct(two10, withWeight(two10, 0, 0), 65_537); // top stays 10; ideal 0.98%
    expect(dropOnly).toBe(3.29);
    expect(dropOneOfTwo).toBe(3.39);
    expect(dropOnly).toBeLessThanOrEqual(dropOneOfTwo);
  });
});

describe('maglev table - input errors', () => {
  test.each([
    [names(2), 12, 'TABLE_SIZE_INVALID', 'size: 12 is not prime'],
    [names(2), 1.5, 'TABLE_SIZE_INVALID', 'size: 1.5'],
    [names(2), 2_097_169, 'TABLE_SIZE_INVALID', 'size: 2097169'],
    [names(13), 13, 'TOO_MANY_BACKENDS', 'size: 13 must be larger than the number of backends (13)'],
    [[{ name: 'a' }, { name: 'a' }], 13, 'BACKEND_NAME_DUPLICATE', 'backends[1].name: "a" appears more than once'],
    [[{ name: '' }], 13, 'BACKEND_NAME_INVALID', 'backends[0].name: ""'],
    [[{ name: 'a', weight: -1 }], 13, 'BACKEND_WEIGHT_INVALID', 'backends[0].weight: -1'],
    [[{ name: 'a', weight: Number.NaN }], 13, 'BACKEND_WEIGHT_INVALID', 'backends[0].weight: NaN'],
    [[{ name: 'a', weight: Number.POSITIVE_INFINITY }], 13, 'BACKEND_WEIGHT_INVALID', 'weight: Infinity'],
  ])('%j at size %s -> %s', (backends, size, code, message) => {
    const call = () => buildTable(backends as BackendSpec[], size as number);
    expect(call).toThrow(MaglevError);
    expect(call).toThrow(message as string);
    try {
      call();
    } catch (err) {
      expect((err as MaglevError).code).toBe(code);
      expect((err as MaglevError).name).toBe('MaglevError');
    }
  });
});

const GOLDEN_SHA256 = '6d2e44cd68102ae553d9bedbbdc2c7d93f3c3d268bfc7e9979a855b5a6353e69';
