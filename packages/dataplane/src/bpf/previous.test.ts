import { NO_BACKEND } from '@l4fleet/maglev';
import { describe, expect, test } from 'vitest';
import type { VipTable } from '../types.js';
import { validateDesired } from '../validate.js';
import { Op } from './loader.js';
import { emptyState, type KernelState, planApply } from './plan.js';
import { planPrevious, previousIds } from './previous.js';

const backends = [
  { name: 'a', address: '198.18.0.1', port: 80 },
  { name: 'b', address: '198.18.0.2', port: 80 },
];
/** Slot s: owner `cur[s]`, previous owner `prev[s]` (indices into backends, -1 none). */
const table = (cur: number[], prev?: number[]): VipTable => ({
  vip: { address: '198.51.100.7', port: 80, protocol: 'tcp' },
  hash: '5-tuple',
  seed: 9,
  backends,
  slots: Int32Array.from(cur),
  ...(prev ? { previousSlots: Int32Array.from(prev) } : {}),
  forwarding: 'gue',
});
const plan = (state: KernelState, ts: VipTable[]) =>
  planApply(state, validateDesired(ts, { requireSamePort: true }), { src4: 'c6124802' }, 0);
/** (slot, value) pairs of an OP_TABLE_PREV payload. */
const writes = (payload: Buffer): [number, number][] => {
  const n = payload.readUInt32LE(4);
  return Array.from({ length: n }, (_x, i) => [payload.readUInt32LE(8 + 4 * i), payload.readUInt32LE(8 + 4 * (n + i))]);
};

describe('second chance: previous owners in the kernel tables', () => {
  test('previousIds: id + 1 of the previous owner; none where absent or equal to the owner; undefined when none at all', () => {
    const slots = Int32Array.from([0, 1, 1, NO_BACKEND]);
    expect(previousIds(Int32Array.from([1, 0, 1, 0]), slots, [10, 20])).toEqual(Uint32Array.from([21, 11, 0, 11]));
    expect(previousIds(Int32Array.from([0, 1, NO_BACKEND, NO_BACKEND]), slots, [10, 20])).toBeUndefined();
    expect(previousIds(undefined, slots, [10, 20])).toBeUndefined();
  });

  test('planPrevious writes only the slots that differ and keeps the model', () => {
    const model = new Map<number, Uint32Array>();
    const first = planPrevious(model, 4, undefined, Uint32Array.from([0, 3, 0]), 3, 'v');
    expect(first?.op).toBe(Op.tablePrev);
    expect(writes(first?.payload as Buffer)).toEqual([[1, 3]]);
    expect(planPrevious(model, 4, model.get(4), Uint32Array.from([0, 3, 0]), 3, 'v')).toBeUndefined();
    const cleared = planPrevious(model, 4, model.get(4), undefined, 3, 'v');
    expect(writes(cleared?.payload as Buffer)).toEqual([[1, 0]]);
    expect(model.has(4)).toBe(false);
  });

  test('a new VIP: the previous owners are written after the table is created and before the VIP points at it', () => {
    const p = plan(emptyState(), [table([1, 1, 1, 0, 0, 0, 0], [0, 0, -1, 0, 1, -1, -1])]);
    expect(p.requests.map((r) => r.what)).toEqual([
      'config',
      'backends',
      'table-create 198.51.100.7:80/tcp',
      'table-previous 198.51.100.7:80/tcp',
      'vips',
      'vip addresses',
    ]);
    // backend ids 0 (a) and 1 (b): previous a = 1, b = 2; slot 3's previous equals its owner: none.
    expect(writes(p.requests[3]?.payload as Buffer)).toEqual([
      [0, 1],
      [1, 1],
      [4, 2],
    ]);
  });

  test('same previous owners again: nothing; a change of previous owners alone is one write and an update', () => {
    const t = table([1, 1, 1, 0, 0, 0, 0], [0, 0, -1, -1, -1, -1, -1]);
    const first = plan(emptyState(), [t]);
    expect(plan(first.next, [t]).requests).toEqual([]);
    const p = plan(first.next, [table([1, 1, 1, 0, 0, 0, 0], [0, -1, 0, -1, -1, -1, -1])]);
    expect(p.requests.map((r) => r.op)).toEqual([Op.tablePrev]);
    expect(writes(p.requests[0]?.payload as Buffer)).toEqual([
      [1, 0],
      [2, 1],
    ]);
    expect(p.vips[0]).toMatchObject({ action: 'updated', slotsChanged: 0 });
    // Dropping previousSlots clears what the kernel holds.
    const none = plan(p.next, [table([1, 1, 1, 0, 0, 0, 0])]);
    expect(writes(none.requests[0]?.payload as Buffer)).toEqual([
      [0, 0],
      [2, 0],
    ]);
  });

  test('previousSlots of another length or with a bad index is refused naming the field', () => {
    expect(() => plan(emptyState(), [table([0, 0, 0, 0, 0, 0, 0], [0, 1])])).toThrow(
      /previousSlots: not an Int32Array of 7/,
    );
    expect(() => plan(emptyState(), [table([0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 5, 0, 0, 0])])).toThrow(
      /previousSlots\[3\]: 5 is not a backend index/,
    );
  });
});
