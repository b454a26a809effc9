/**
 * What a read-back holding a value this driver never writes (BPF_STATE_UNREADABLE: a VIP id past l4f_tables, two
 * backend ids for one VIP and address, a pad byte set, ...) costs. Such a value is refused at every apply, so the
 * node would keep it for good; before, every pin was removed (the program detached, every map and flow lost, each VIP
 * dark until the apply wrote it again). Now only the map that holds it is made anew: the driver removes its pin and
 * starts a loader, whose full path creates that map, replaces the program atomically (it reads a map the attached
 * one does not: start.c same_pinned_maps) and empties the flow caches only when VIP or backend ids were lost
 * (l4f_vips, l4f_backends: native/bpf-loader/stale.c). The other maps keep their entries, and the apply writes the
 * new map's. docs/design/0007-bpf-dataplane.md, "Loader and restarts".
 */
import type { DataPlaneError } from '../errors.js';
import { UnreadableMapError } from './codec-bytes.js';

/** The maps a dump reads whose entries the codec validates, each of which a loader's start can create alone. */
export const REBUILDABLE_MAPS: readonly string[] = ['l4f_vips', 'l4f_vip_addrs', 'l4f_backends', 'l4f_src_ranges'];

/**
 * The map to make anew for `err`: the one it names, unless that map was made anew already during this read-back
 * (`rebuilt`). Undefined: no such map, so every pin goes.
 */
export function mapToRebuild(err: DataPlaneError, rebuilt: ReadonlySet<string>): string | undefined {
  if (!(err instanceof UnreadableMapError) || !REBUILDABLE_MAPS.includes(err.map) || rebuilt.has(err.map))
    return undefined;
  return err.map;
}
