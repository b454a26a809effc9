/**
 * Guards of `l4fleet apply`: changes that are valid but move or drop every flow, so each needs its own flag and
 * says what it will do. A typo in --prefix or --etcd looks like an empty fleet; without a guard the apply would
 * create a second fleet there with a fresh random hash seed (Maglev §3.4: another seed is another table, so every
 * flow of a fleet built from it moves), and a file that lost its `vips` would withdraw every VIP.
 */
import type { Fleet } from '@l4fleet/config';

export interface ApplyGuardFlags {
  /** Create a fleet where the prefix has none. */
  readonly newFleet?: boolean;
  /** Replace the stored hash seed with the file's. */
  readonly changeSeed?: boolean;
  /** Apply a fleet with no VIPs over one that has some. */
  readonly removeAllVips?: boolean;
}

export interface ApplyGuard {
  /** The flag that allows it, e.g. `--new-fleet`. */
  readonly flag: string;
  /** What will happen, in words. */
  readonly message: string;
  /** True when the flag was given. */
  readonly allowed: boolean;
}

const hex = (seed: number): string => `0x${seed.toString(16)}`;

/** The guards an apply of `next` over the stored state trips, allowed or not (empty: nothing dangerous). */
export function applyGuards(
  stored: { readonly fleet: Fleet; readonly revision: number },
  next: Fleet,
  prefix: string,
  flags: ApplyGuardFlags,
): ApplyGuard[] {
  const out: ApplyGuard[] = [];
  if (stored.revision === 0) {
    const seed =
      next.hashSeed === undefined ? 'a new random hash seed' : `hash seed ${hex(next.hashSeed)} from the file`;
    out.push({
      flag: '--new-fleet',
      allowed: Boolean(flags.newFleet),
      message: `no fleet under prefix ${JSON.stringify(prefix)} (a wrong --prefix or --etcd?): this creates a new fleet with ${seed}`,
    });
    return out;
  }
  const storedSeed = stored.fleet.hashSeed;
  if (next.hashSeed !== undefined && storedSeed !== undefined && next.hashSeed !== storedSeed) {
    out.push({
      flag: '--change-seed',
      allowed: Boolean(flags.changeSeed),
      message: `hashSeed: ${hex(storedSeed)} -> ${hex(next.hashSeed)} rebuilds every table: nearly every flow moves to another backend (connections through stateless paths break)`,
    });
  }
  if (next.vips.length === 0 && stored.fleet.vips.length > 0) {
    out.push({
      flag: '--remove-all-vips',
      allowed: Boolean(flags.removeAllVips),
      message: `vips: the file has none: all ${stored.fleet.vips.length} VIPs would be withdrawn (every node stops announcing them)`,
    });
  }
  return out;
}
