/**
 * VIP and backend ids for a plan (plan.ts). Backend ids are never reused while the pins live (a flow LRU entry,
 * which has no idle timeout, may still name one, and pick() would send it to whichever address of the VIP got
 * the id), so a fleet whose backend addresses keep changing runs out after 65,536; removeState frees them (0007
 * "Maps"). VIP ids are those of the current VIPs.
 */
import { DataPlaneError } from '../errors.js';

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
