/**
 * Slot deltas of the netdev table (plan.ts): what a VIP's slots forward to, and the element changes that take the
 * kernel's slot map and overlay from one table to the next. Typed arrays and small functions: this runs over every
 * slot of every changed VIP on the apply's critical path.
 */
import { NO_BACKEND } from '@l4fleet/maglev';
import { OVERLAY_NO_BACKEND } from './names.js';
import type { Op } from './ops.js';
import type { KernelVip } from './plan.js';

/** Slot -> backend id (0 for NO_BACKEND). Small hot loops stay in small functions, which V8 optimises. */
export function toBackendIds(wanted: Int32Array, ids: Uint32Array): Uint32Array {
  const size = wanted.length;
  const slots = new Uint32Array(size);
  for (let i = 0; i < size; i++) {
    const s = wanted[i] as number;
    slots[i] = s === NO_BACKEND ? 0 : (ids[s] as number);
  }
  return slots;
}

/** The backend id a slot forwards to (0: none), as the rules read the two maps. */
export function effectiveSlot(v: Pick<KernelVip, 'base' | 'overlay'>, slot: number): number {
  const o = v.overlay[slot] as number;
  if (o === 0) return v.base[slot] as number;
  return o === OVERLAY_NO_BACKEND ? 0 : o;
}

/** A new VIP or size: every slot into the slot map. */
export function fillBase(set: string, slots: Uint32Array, out: Op[]): void {
  const keys = new Uint32Array(slots.length);
  const values = new Uint32Array(slots.length);
  let n = 0;
  for (let s = 0; s < slots.length; s++) {
    if (slots[s] === 0) continue;
    keys[n] = s;
    values[n++] = slots[s] as number;
  }
  if (n > 0) out.push({ kind: 'bulk', verb: 'add', set, keys: keys.subarray(0, n), values: values.subarray(0, n) });
}

/**
 * The changed slots, written to the overlay (Maglev moves the slots of a leaving backend: a quarter of the
 * table when one of 4 leaves). A slot the overlay does not have yet costs one `add`; replacing a slot-map
 * element would cost a `delete` and an `add` (the kernel cannot change an element's value in place), and
 * the kernel's ~0.75 us per operation is most of an apply. Typed arrays, not an object per slot: this is
 * on the apply's critical path. Returns the new overlay and how many slots changed.
 */
export function diffSlots(
  set: string,
  old: Pick<KernelVip, 'base' | 'overlay' | 'overlayCount'>,
  slots: Uint32Array,
  out: Op[],
): { overlay: Uint32Array; overlayCount: number; changed: number } {
  const size = slots.length;
  // Most VIPs do not change in an apply: find the first changed slot before copying or allocating.
  let first = 0;
  while (first < size && effectiveSlot(old, first) === slots[first]) first += 1;
  if (first === size) return { overlay: old.overlay, overlayCount: old.overlayCount, changed: 0 };
  const overlay = Uint32Array.from(old.overlay);
  let overlayCount = old.overlayCount;
  const delKeys = new Uint32Array(size - first);
  const addKeys = new Uint32Array(size - first);
  const addValues = new Uint32Array(size - first);
  let dels = 0;
  let adds = 0;
  let changed = 0;
  for (let s = first; s < size; s++) {
    const now = slots[s] as number;
    if (effectiveSlot(old, s) === now) continue;
    changed += 1;
    const was = overlay[s] as number;
    const want = now === (old.base[s] as number) ? 0 : now === 0 ? OVERLAY_NO_BACKEND : now;
    if (was !== 0) {
      delKeys[dels++] = s;
      overlayCount -= 1;
    }
    if (want !== 0) {
      addKeys[adds] = s;
      addValues[adds++] = want;
      overlayCount += 1;
    }
    overlay[s] = want;
  }
  if (dels > 0) out.push({ kind: 'bulk', verb: 'delete', set, keys: delKeys.subarray(0, dels) });
  if (adds > 0)
    out.push({ kind: 'bulk', verb: 'add', set, keys: addKeys.subarray(0, adds), values: addValues.subarray(0, adds) });
  return { overlay, overlayCount, changed };
}
