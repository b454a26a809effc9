/**
 * The hash seed check of `l4fleet recover`. The running agents keep serving the last fleet that read (they never took
 * the broken state), so the seed that decides whether flows move is that fleet's: a file with another one (another
 * fleet's backup, a hand-edited copy) rebuilds every table (Maglev §3.4), which `apply` allows only with --change-seed,
 * and so does recover. The broken pointer's own seed field is read inside the store, which does not hand it out before
 * the write; the last write that still reads whole, from etcd's history, is what the nodes hold. A file that sets no
 * seed is therefore stored with that one (seedToStore): the broken pointer's field may hold another value or none,
 * and keeping it, or drawing a new one, would move nearly every flow without --change-seed.
 */
import type { Fleet } from '@l4fleet/config';
import { type FleetStore, StoreError } from '@l4fleet/store';

/** Writes of the pointer walked back over, newest first, to find one that reads: a corruption is one or a few. */
export const RECOVER_HISTORY_WRITES = 50;

/** The last write that reads whole: its revision and the seed its fleet was stored with. */
export interface ServedSeed {
  readonly revision: number;
  readonly hashSeed: number;
}

/** Why an earlier write cannot tell the seed: it does not decode, or etcd no longer holds it. */
const UNREADABLE: ReadonlySet<string> = new Set(['INVALID_RECORD', 'COMPACTED', 'NOT_FOUND']);

/** The newest write in etcd's history whose fleet reads, undefined when none does (compacted, or deleted by hand). */
export async function lastReadableSeed(store: FleetStore): Promise<ServedSeed | undefined> {
  const history = await store.getDesiredHistory({ limit: RECOVER_HISTORY_WRITES });
  for (const r of history.revisions) {
    if (r.invalid !== undefined) continue;
    try {
      const at = await store.getDesiredAt(r.revision);
      if (at.fleet.hashSeed !== undefined) return { revision: at.revision, hashSeed: at.fleet.hashSeed };
    } catch (err) {
      // A pointer that decodes but names bad chunks (the broken state itself, often): try the write before it.
      if (err instanceof StoreError && UNREADABLE.has(err.code)) continue;
      throw err;
    }
  }
  return undefined;
}

const hex = (seed: number): string => `0x${seed.toString(16)}`;

/** The seed change the recovery would make, in apply's words (apply-guards.ts); undefined when there is none. */
export function seedChange(served: ServedSeed | undefined, fleet: Fleet): string | undefined {
  if (served === undefined || fleet.hashSeed === undefined || fleet.hashSeed === served.hashSeed) return undefined;
  return (
    `hashSeed: ${hex(served.hashSeed)} -> ${hex(fleet.hashSeed)} rebuilds every table: nearly every flow moves to ` +
    `another backend (connections through stateless paths break); ${hex(served.hashSeed)} is the seed of revision ` +
    `${served.revision}, the last write that reads, which the nodes still serve`
  );
}

/**
 * The fleet recover stores: a file without a seed gets the one the nodes serve when that is known; otherwise the file
 * as it is (then the store keeps the broken pointer's seed where it still reads, else draws one).
 */
export function seedToStore(served: ServedSeed | undefined, fleet: Fleet): Fleet {
  return fleet.hashSeed === undefined && served !== undefined ? { ...fleet, hashSeed: served.hashSeed } : fleet;
}

/** Both seeds, for the preview. */
export function seedLine(served: ServedSeed | undefined, fleet: Fleet): string {
  const file =
    fleet.hashSeed !== undefined
      ? `the file sets ${hex(fleet.hashSeed)}`
      : served !== undefined
        ? `the file sets none, so ${hex(served.hashSeed)}, the seed the nodes serve, is stored`
        : "the file sets none (the broken pointer's own hashSeed is kept where it still reads, else a new one is drawn and every flow moves)";
  const last =
    served === undefined
      ? `no write etcd's history still holds reads whole (its last ${RECOVER_HISTORY_WRITES} looked at; compacted, or the pointer deleted by hand): the seed the nodes serve cannot be checked`
      : `the last write that reads (revision ${served.revision}) has ${hex(served.hashSeed)}`;
  return `hash seed: ${file}; ${last}`;
}
