import { describe, expect, test } from 'vitest';
import { previousOwners } from './previous.js';
import { buildTable, NO_BACKEND } from './table.js';

const SIZE = 251;
const identity = (n: number) => Int32Array.from({ length: n }, (_v, i) => i);

describe('previous owners', () => {
  // Index space of the output: a, b, c, d (a..c before, a..d now).
  const abc = buildTable([{ name: 'a' }, { name: 'b' }, { name: 'c' }], SIZE);
  const abcd = buildTable([{ name: 'a' }, { name: 'b' }, { name: 'c' }, { name: 'd' }], SIZE);

  test('adding d: exactly the slots that moved have their earlier owner as previous owner, the rest none', () => {
    const prev = previousOwners(abcd, [{ slots: abc, toIndex: identity(3) }]);
    let moved = 0;
    for (let s = 0; s < SIZE; s++) {
      if (abcd[s] === abc[s]) expect(prev[s]).toBe(NO_BACKEND);
      else {
        moved += 1;
        expect(prev[s]).toBe(abc[s]);
      }
    }
    expect(moved).toBeGreaterThan(SIZE / 8);
  });

  test('a slot that moved back (A -> B -> A) names B; one unmoved in the last change names the owner before', () => {
    const older = new Int32Array([0, 0, 1]);
    const last = new Int32Array([1, 1, 1]);
    const now = new Int32Array([0, 1, 1]);
    const prev = previousOwners(now, [
      { slots: last, toIndex: identity(2) },
      { slots: older, toIndex: identity(2) },
    ]);
    expect([...prev]).toEqual([1, 0, NO_BACKEND]);
  });

  test('an earlier owner that is not carried settles the slot without a previous owner', () => {
    const last = new Int32Array([2, 2, 0]);
    const older = new Int32Array([1, 1, 1]);
    const prev = previousOwners(new Int32Array([0, 1, 0]), [
      { slots: last, toIndex: new Int32Array([0, 1, NO_BACKEND]) },
      { slots: older, toIndex: identity(2) },
    ]);
    // Slots 0 and 1 moved from the uncarried backend 2 (not from the older table's 1); slot 2 moved earlier.
    expect([...prev]).toEqual([NO_BACKEND, NO_BACKEND, 1]);
  });

  test('indices are mapped into the output index space', () => {
    const prev = previousOwners(new Int32Array([0, 0]), [
      { slots: new Int32Array([0, 1]), toIndex: new Int32Array([0, 5]) },
    ]);
    expect([...prev]).toEqual([NO_BACKEND, 5]);
  });

  test('no earlier table: no previous owner', () => {
    expect(previousOwners(abcd, []).every((v) => v === NO_BACKEND)).toBe(true);
  });

  test('an earlier table of another size is refused naming it', () => {
    expect(() => previousOwners(abcd, [{ slots: new Int32Array(13), toIndex: identity(1) }])).toThrow(
      'earlier[0].slots: 13 slots, the current table has 251',
    );
  });
});
