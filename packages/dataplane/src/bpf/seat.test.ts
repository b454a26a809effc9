import { buildTable } from '@l4fleet/maglev';
import { describe, expect, test } from 'vitest';
import type { VipTable } from '../types.js';
import { validateDesired } from '../validate.js';
import { Op } from './loader.js';
import { emptyState, planApply } from './plan.js';
import { DEFAULT_SEAT_SLOTS, nextSeat, seatRequest } from './seat.js';

const vip = (port: number, size: number): VipTable => {
  const bs = [{ name: 'a', address: '198.18.0.1', port }];
  return {
    vip: { address: '198.51.100.7', port, protocol: 'tcp' },
    hash: '5-tuple',
    seed: 1,
    backends: bs,
    slots: buildTable(bs, size),
  };
};
const applied = (ts: VipTable[], state = emptyState()) =>
  planApply(state, validateDesired(ts, { requireSamePort: false }), {}, 0).next;

describe('bpf seat', () => {
  test('at the table index of the lowest free VIP id, where planApply puts the next new VIP', () => {
    expect(nextSeat(emptyState(), undefined)).toEqual({ index: 0, size: DEFAULT_SEAT_SLOTS });
    const two = applied([vip(80, 251), vip(81, 251)]);
    expect(nextSeat(two, undefined)).toEqual({ index: 4, size: 251 });
    // VIP id 0 removed: its id is the lowest free again, and a new VIP gets it (table index 0).
    const gap = applied([vip(81, 251)], two);
    expect(nextSeat(gap, undefined)?.index).toBe(0);
    const refilled = applied([vip(81, 251), vip(82, 251)], gap);
    expect([...refilled.vips.values()].find((v) => v.key.port === 82)?.value.table).toBe(0);
  });

  test('size: the table created last, else the previous seat, else any table, else the default', () => {
    const one = applied([vip(80, 251)]);
    expect(nextSeat(one, { index: 2, size: 509 }, 1021)?.size).toBe(1021);
    expect(nextSeat(one, { index: 2, size: 509 })?.size).toBe(509);
    expect(nextSeat(one, undefined)?.size).toBe(251);
  });

  test('none when every VIP id is taken; the request carries index and size', () => {
    const full = emptyState();
    for (let id = 0; id < 4096; id++) {
      full.vips.set(String(id), { key: {} as never, value: { id } as never });
    }
    expect(nextSeat(full, undefined)).toBeUndefined();
    const r = seatRequest({ index: 6, size: 65_537 });
    expect([r.op, r.payload.readUInt32LE(0), r.payload.readUInt32LE(4)]).toEqual([Op.tableSeat, 6, 65_537]);
  });
});
