/**
 * VIP and backend ids for a plan (plan.ts). A backend id is per (VIP, backend address), so a desired state needs
 * one per VIP x the distinct addresses of its backends (its pool's members): more than MAX_BACKENDS of those is
 * refused as TOO_LARGE before any id is given (checkBackendIds). Backend ids are never reused while the pins live
 * (a flow cache entry, which has no idle timeout, may still name one, and pick() would send it to whichever address
 * of the VIP got the id), so a fleet whose backend addresses keep changing runs out after 65,536 with fewer in use
 * (BPF_IDS_EXHAUSTED); removeState frees them (0007 "Maps"). VIP ids are those of the current VIPs.
 */
import { DataPlaneError } from '../errors.js';
import type { NormalizedVip } from '../validate.js';

const n = (v: number): string => v.toLocaleString('en-US');

/**
 * Refuses a desired state that needs more backend ids than `max` by itself, whatever the maps hold: one per VIP and
 * distinct backend address. Checked before allocating, so such a state fails at once (an allocation up to the
 * ceiling took ~2 s) and is not reported as exhaustion by removed backends, which removeState would not cure.
 */
export function checkBackendIds(desired: readonly NormalizedVip[], max: number): void {
  let needed = 0;
  let most: NormalizedVip | undefined;
  let mostCount = 0;
  for (const v of desired) {
    const count = new Set(v.backends.map((b) => b.addressHex)).size;
    needed += count;
    if (count > mostCount) {
      most = v;
      mostCount = count;
    }
  }
  if (needed <= max) return;
  throw new DataPlaneError(
    'TOO_LARGE',
    `the desired state needs ${n(needed)} backend ids, one per VIP and backend address over its ` +
      `${n(desired.length)} VIP${desired.length === 1 ? '' : 's'} ` +
      `(VIPs x the members of their pools; the most: vip ${most?.label} with ${n(mostCount)}), more than the ` +
      `${n(max)} the bpf maps hold (MAX_BACKENDS); nothing was sent, the maps keep serving the last state`,
  );
}

/**
 * The allocator of one plan: each call gives the lowest id `used` does not hold and that it has not given yet.
 * Ids only become used during a plan (no id is freed before its end), so the lowest free id never goes down and
 * one cursor finds them all: every id is probed once per plan (a scan from 0 for each new backend made a plan of
 * 40,000 backends take 5 s). Thrown before anything is sent, so the maps keep serving the last state.
 */
export function freeIds(used: (id: number) => boolean, max: number, kind: 'VIP' | 'backend'): (what: string) => number {
  let cursor = 0;
  return (what) => {
    while (cursor < max && used(cursor)) cursor += 1;
    if (cursor < max) {
      cursor += 1;
      return cursor - 1;
    }
    const why =
      kind === 'backend'
        ? " (a removed backend's id is not reused while the pinned maps live; close with removeState to free them)"
        : '';
    throw new DataPlaneError('BPF_IDS_EXHAUSTED', `${what}: all ${max} ${kind} ids are in use${why}`);
  };
}
