/**
 * Folding a VIP's overlay map into its slot map after a quiet time (design note 0004): applies write changed slots
 * to the overlay (one add each); the fold moves them into the slot map in small steps.
 */

import { overlayMap, slotsMap } from './names.js';
import type { Op } from './ops.js';
import type { KernelState } from './plan.js';
import { effectiveSlot } from './slot-delta.js';

export interface FoldPlan {
  readonly ops: readonly Op[];
  readonly next: KernelState;
  /** Overlay entries folded by this step. */
  readonly slots: number;
}

/**
 * One step of folding the overlays into the slot maps: up to `maxSlots` overlay entries move into their
 * slot maps, in one transaction that leaves every slot forwarding where it did (the rules read the
 * overlay first, and both maps change together). Small steps, so an apply that arrives meanwhile waits
 * for one step only. Undefined when no overlay has entries.
 */
export function planFold(current: KernelState, maxSlots: number): FoldPlan | undefined {
  const vips = new Map(current.vips);
  const ops: Op[] = [];
  let budget = maxSlots;
  for (const v of current.vips.values()) {
    if (budget === 0) break;
    if (v.overlayCount === 0) continue;
    const base = Uint32Array.from(v.base);
    const overlay = Uint32Array.from(v.overlay);
    const dels: number[] = [];
    const addKeys: number[] = [];
    const addValues: number[] = [];
    const cleared: number[] = [];
    for (let s = 0; s < overlay.length && cleared.length < budget; s++) {
      if (overlay[s] === 0) continue;
      const now = effectiveSlot(v, s);
      if (base[s] !== 0) dels.push(s);
      if (now !== 0) {
        addKeys.push(s);
        addValues.push(now);
      }
      base[s] = now;
      overlay[s] = 0;
      cleared.push(s);
    }
    if (dels.length > 0) ops.push({ kind: 'bulk', verb: 'delete', set: slotsMap(v.key), keys: Uint32Array.from(dels) });
    if (addKeys.length > 0) {
      ops.push({
        kind: 'bulk',
        verb: 'add',
        set: slotsMap(v.key),
        keys: Uint32Array.from(addKeys),
        values: Uint32Array.from(addValues),
      });
    }
    ops.push({ kind: 'bulk', verb: 'delete', set: overlayMap(v.key), keys: Uint32Array.from(cleared) });
    vips.set(v.key, { ...v, base, overlay, overlayCount: v.overlayCount - cleared.length });
    budget -= cleared.length;
  }
  if (ops.length === 0) return undefined;
  return { ops, next: { ...current, vips }, slots: maxSlots - budget };
}
