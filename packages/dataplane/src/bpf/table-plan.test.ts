import { NO_BACKEND } from '@l4fleet/maglev';
import { describe, expect, test } from 'vitest';
import { NO_BACKEND_ID } from './codec.js';
import { planTableCreate, planTableWrite } from './table-plan.js';

const ids = [7, 3, 12];
const slots = Int32Array.from([0, 1, 2, NO_BACKEND, 1, 0]);
const kernel = Uint32Array.from([7, 3, 12, NO_BACKEND_ID, 3, 7]);

describe('bpf table plan', () => {
  test('create - the payload is index, size and the ids; the kept table is those ids', () => {
    const c = planTableCreate(5, slots, ids);
    expect(c.payload.length).toBe(8 + 4 * slots.length);
    expect([c.payload.readUInt32LE(0), c.payload.readUInt32LE(4)]).toEqual([5, 6]);
    expect([...c.table]).toEqual([...kernel]);
    expect(c.payload.readUInt32LE(8 + 4 * 3)).toBe(NO_BACKEND_ID);
  });

  test('write - nothing when the kernel already holds the table', () => {
    expect(planTableWrite(5, kernel, slots, ids)).toBeUndefined();
  });

  test('write - only the slots whose id differs, indices then ids; the old table is left as it was', () => {
    const moved = Int32Array.from(slots);
    moved[1] = 2;
    moved[3] = 0;
    const w = planTableWrite(4, kernel, moved, ids);
    expect(w?.changed).toBe(2);
    const p = w?.payload as Buffer;
    expect([0, 1, 2, 3, 4, 5].map((i) => p.readUInt32LE(4 * i))).toEqual([4, 2, 1, 3, 12, 7]);
    expect([...(w?.table ?? [])]).toEqual([7, 12, 12, 7, 3, 7]);
    expect([...kernel]).toEqual([7, 3, 12, NO_BACKEND_ID, 3, 7]);
  });

  test('write - a table of another size is refused (the plan creates a new one instead)', () => {
    expect(() => planTableWrite(4, kernel.subarray(1), slots, ids)).toThrow(RangeError);
  });
});
