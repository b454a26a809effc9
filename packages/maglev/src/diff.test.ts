import { describe, expect, test } from 'vitest';
import { churn, diffTables } from './diff.js';
import { tableStats } from './stats.js';
import { buildNamedTable } from './table.js';

describe('diff, churn and stats', () => {
  const abc = buildNamedTable([{ name: 'a' }, { name: 'b' }, { name: 'c' }], 251);

  test('a table compared with itself in another argument order has no changes', () => {
    const cba = buildNamedTable([{ name: 'c' }, { name: 'b' }, { name: 'a' }], 251);
    expect(diffTables(abc, cba)).toEqual([]);
    expect(churn(abc, cba)).toEqual({ changed: 0, size: 251, fraction: 0 });
  });

  test('removing c: all slots of c change, to a or b, and names are reported, not indices', () => {
    const ab = buildNamedTable([{ name: 'a' }, { name: 'b' }], 251);
    const changes = diffTables(abc, ab);
    expect(changes.filter((c) => c.from === 'c')).toHaveLength(tableStats(abc).slotsPerBackend.c as number);
    expect(changes.every((c) => (c.to === 'a' || c.to === 'b') && c.from !== c.to)).toBe(true);
  });

  test('draining to weight 0 empties the slots when it is the last backend', () => {
    const drained = buildNamedTable([{ name: 'a', weight: 0 }], 251);
    const live = buildNamedTable([{ name: 'a' }], 251);
    expect(diffTables(live, drained).every((c) => c.from === 'a' && c.to === null)).toBe(true);
    expect(tableStats(drained)).toMatchObject({ empty: 251, max: 0, min: 0, spread: 0 });
  });

  test('the last backend leaving: every slot it owned becomes unowned, and that is churn', () => {
    const a = buildNamedTable([{ name: 'a' }], 7);
    const none = buildNamedTable([], 7);
    // -1 for "a is not in the other table" once equalled NO_BACKEND: losing every backend counted as no change.
    expect(churn(a, none)).toEqual({ changed: 7, size: 7, fraction: 1 });
    expect(diffTables(a, none)).toHaveLength(7);
    expect(churn(none, a).changed).toBe(7);
  });

  test('tables of different sizes cannot be diffed', () => {
    expect(() => churn(abc, buildNamedTable([{ name: 'a' }], 13))).toThrow('sizes 251 and 13 differ');
  });

  test('stats: imbalance is max over mean', () => {
    const s = tableStats(abc);
    expect(s.max + s.min).toBeGreaterThan(0);
    expect(s.imbalance).toBeCloseTo(s.max / (251 / 3), 10);
  });
});

describe('maglev diff - large tables', () => {
  // Built by hand (no fill): 200,000 backends round-robin over a 1,000,003-slot table.
  const N = 200_000;
  const size = 1_000_003;
  const names = Array.from({ length: N }, (_, i) => `b${i}`);
  const slots = Int32Array.from({ length: size }, (_, s) => s % N);

  test('tableStats of 200,000 backends (a Math.max spread overflowed the stack)', () => {
    const stats = tableStats({ backends: names, slots });
    expect(stats.max - stats.min).toBe(1);
    expect(stats.spread).toBe(1);
  });

  test('churn of 200,000 backends, one renamed: exactly its slots move', () => {
    const renamed = names.map((n, i) => (i === 7 ? 'other' : n));
    const c = churn({ backends: names, slots }, { backends: renamed, slots });
    expect(c.changed).toBe(slots.filter((i) => i === 7).length);
  });
});
