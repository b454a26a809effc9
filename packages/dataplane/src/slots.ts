/**
 * Comparing two tables of one VIP slot by slot: indices mean nothing across membership changes, so each
 * slot's backend is compared by a key (by default its name, which is what Maglev hashes).
 */
import { NO_BACKEND } from '@l4fleet/maglev';
import type { VipBackend, VipTable } from './types.js';

/** How many slots of `b` have another backend than in `a`; a different size changes every slot. */
export function changedSlots(
  a: VipTable,
  b: VipTable,
  ownerKey: (backend: VipBackend) => string = (backend) => backend.name,
): number {
  if (a.slots.length !== b.slots.length) return b.slots.length;
  const owner = (t: VipTable, s: number): string | null => {
    const i = t.slots[s] as number;
    const backend = i === NO_BACKEND ? undefined : t.backends[i];
    return backend === undefined ? null : ownerKey(backend);
  };
  let n = 0;
  for (let s = 0; s < b.slots.length; s++) if (owner(a, s) !== owner(b, s)) n += 1;
  return n;
}

/** Indices where two tables of equal length hold different values (kernel slot tables of backend ids). */
export function changedSlotIndices(a: Uint32Array, b: Uint32Array): Uint32Array {
  let n = 0;
  for (let s = 0; s < b.length; s++) if (a[s] !== b[s]) n += 1;
  const out = new Uint32Array(n);
  n = 0;
  for (let s = 0; s < b.length; s++) if (a[s] !== b[s]) out[n++] = s;
  return out;
}
