/**
 * The seat: where the next new VIP's table will go, so the loader can put a fresh table there ahead of time
 * (native/bpf-loader/ahead.c). Inserting a table into l4f_tables (a map of maps) waits for an RCU grace period
 * in the kernel (synchronize_rcu after every update of a map-in-map; 8-16 ms per insert on the 2026-12-03 VM),
 * and that wait was most of a new VIP's apply. planApply gives a new VIP the lowest free VIP id and its table
 * the index id * 2; a create there of the seat's size only fills the seat.
 */
import { MAX_VIPS } from './codec.js';
import { Op, type Request } from './loader.js';
import type { KernelState } from './plan.js';

/** Maglev's usual M (node-maps.h L4F_DEFAULT_TABLE_SLOTS): the seat's size before any table exists. */
export const DEFAULT_SEAT_SLOTS = 65_537;

export interface Seat {
  readonly index: number;
  readonly size: number;
}

/**
 * The seat after an apply: at the table index of the lowest VIP id no VIP holds, of the size of the table the
 * apply created last (`createdSize`), else of the previous seat, else of any table, else DEFAULT_SEAT_SLOTS.
 * Undefined when every VIP id is in use.
 */
export function nextSeat(state: KernelState, previous: Seat | undefined, createdSize?: number): Seat | undefined {
  const used = new Set([...state.vips.values()].map((v) => v.value.id));
  let id = 0;
  while (id < MAX_VIPS && used.has(id)) id++;
  if (id === MAX_VIPS) return undefined;
  const any = state.tables.values().next().value as Uint32Array | undefined;
  const size = createdSize ?? previous?.size ?? any?.length ?? DEFAULT_SEAT_SLOTS;
  return { index: id * 2, size };
}

export function seatRequest(seat: Seat): Request {
  const payload = Buffer.allocUnsafe(8);
  payload.writeUInt32LE(seat.index, 0);
  payload.writeUInt32LE(seat.size, 4);
  return { op: Op.tableSeat, payload, what: `table-seat ${seat.index} (${seat.size} slots)` };
}
