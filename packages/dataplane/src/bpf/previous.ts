/**
 * Second chance (docs/design/0011-second-chance.md): each slot of a VIP's kernel table also holds the slot's
 * previous owner, as its backend id + 1 (0 = none, so a freshly created, zeroed table has none). This plans the
 * OP_TABLE_PREV writes that bring a table's previous owners to the desired ones, changing only what differs.
 */
import { NO_BACKEND } from '@l4fleet/maglev';
import { changedSlotIndices } from '../slots.js';
import { Op, type Request } from './loader.js';

/**
 * The desired previous owners of one table in kernel form (id + 1, 0 = none), or undefined when the VIP has
 * none at all (no `previousSlots`, or every entry NO_BACKEND or equal to the current owner).
 */
export function previousIds(
  previousSlots: Int32Array | undefined,
  slots: Int32Array,
  ids: readonly number[],
): Uint32Array | undefined {
  if (previousSlots === undefined) return undefined;
  const out = new Uint32Array(slots.length);
  let any = false;
  for (let s = 0; s < slots.length; s++) {
    const p = previousSlots[s] as number;
    if (p === NO_BACKEND || p === slots[s]) continue;
    out[s] = (ids[p] as number) + 1;
    any = true;
  }
  return any ? out : undefined;
}

/**
 * The request writing `want` into table `table` whose previous owners are now `have` (undefined: all 0, as
 * after OP_TABLE_CREATE), or undefined when nothing differs. Updates `previous` (the driver's model).
 */
export function planPrevious(
  previous: Map<number, Uint32Array>,
  table: number,
  have: Uint32Array | undefined,
  want: Uint32Array | undefined,
  size: number,
  label: string,
): Request | undefined {
  if (have === undefined && want === undefined) return undefined;
  const from = have ?? new Uint32Array(size);
  const to = want ?? new Uint32Array(size);
  const diff = changedSlotIndices(from, to);
  if (want === undefined) previous.delete(table);
  else previous.set(table, want);
  if (diff.length === 0) return undefined;
  const vals = new Uint32Array(diff.length);
  for (let i = 0; i < diff.length; i++) vals[i] = to[diff[i] as number] as number;
  const head = Buffer.alloc(8);
  head.writeUInt32LE(table, 0);
  head.writeUInt32LE(diff.length, 4);
  return {
    op: Op.tablePrev,
    payload: Buffer.concat([head, Buffer.from(diff.buffer), Buffer.from(vals.buffer)]),
    what: `table-previous ${label}`,
  };
}
