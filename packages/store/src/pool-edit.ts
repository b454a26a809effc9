/**
 * Changing one pool's members in place: a read-modify-write of the desired fleet guarded by the revision read
 * (apply's `expectRevision`), started again on a concurrent change. The one implementation behind `l4fleet member`
 * and the dashboard's member actions, so both refuse, retry and report alike. `editVip` does the same for one VIP.
 */
import { type Fleet, type Member, type MemberStatus, type Pool, parseFleet, type Vip, vipKey } from '@l4fleet/config';
import { StoreError } from './errors.js';
import type { FleetStore } from './types.js';

/** Reads and applies of one edit against concurrent writers before it gives up with `CONFLICT`. */
export const MAX_POOL_EDIT_ATTEMPTS = 3;

/** The pool's new members, or the sentence that says why nothing needs writing. */
export type MembersEdit = (pool: Pool) => readonly Member[] | { readonly unchanged: string };

/** What an edit wrote: the fleet before and after (validated), the revision, and the decided status read with it. */
export interface PoolEditWritten {
  readonly revision: number;
  readonly before: Fleet;
  readonly after: Fleet;
  /** Decided member status read before the write, for @l4fleet/config predictChurn. */
  readonly decided: ReadonlyMap<string, MemberStatus>;
}

/** A dry run: what the edit would write at the revision read (validated and checked), not written. */
export interface PoolEditPreview extends Omit<PoolEditWritten, 'revision'> {
  readonly dryRun: true;
  /** The revision read: the preview holds while the fleet stays at it. */
  readonly revision: number;
}

/** Nothing was written: `unchanged` from the edit, at the revision read. */
export interface PoolEditUnchanged {
  readonly unchanged: string;
  readonly revision: number;
}

export interface PoolEditOptions {
  /** Throws (the caller's error) when the edited fleet must not be written; runs on every attempt. */
  readonly check?: (before: Fleet, after: Fleet) => void;
  readonly maxAttempts?: number;
  /** Validate, check and read the decided status, but write nothing (PoolEditPreview). */
  readonly dryRun?: boolean;
  /** Who writes it, for the history (ApplyOptions.by). */
  readonly by?: string;
}

/**
 * The fleet's new content (validated by parseFleet before it is written), or the sentence that says why nothing needs
 * writing. Throws (the caller's error, or StoreError `NOT_FOUND`) when the edit cannot apply to this fleet.
 */
export type FleetEdit = (fleet: Fleet, revision: number) => unknown | { readonly unchanged: string };

/**
 * Applies `edit` to the stored fleet: read, edit, parseFleet (every rule a file meets), `check`, then apply guarded by
 * the revision read, started again on a concurrent change. Throws StoreError `CONFLICT` when the fleet changed under
 * each of `maxAttempts` attempts, and whatever `edit`, parseFleet or `check` throws; nothing is written then.
 */
export async function editFleet(
  store: FleetStore,
  what: string,
  edit: FleetEdit,
  options: PoolEditOptions = {},
): Promise<PoolEditWritten | PoolEditPreview | PoolEditUnchanged> {
  const maxAttempts = options.maxAttempts ?? MAX_POOL_EDIT_ATTEMPTS;
  for (let attempt = 1; ; attempt++) {
    const current = await store.getDesired();
    const edited = edit(current.fleet, current.revision);
    if (typeof edited === 'object' && edited !== null && 'unchanged' in edited) {
      return { unchanged: String((edited as { unchanged: string }).unchanged), revision: current.revision };
    }
    const after = parseFleet(edited);
    options.check?.(current.fleet, after);
    const { decided } = await store.getDecided();
    if (options.dryRun) return { dryRun: true, revision: current.revision, before: current.fleet, after, decided };
    try {
      const by = options.by === undefined ? {} : { by: options.by };
      const { revision } = await store.apply(after, { expectRevision: current.revision, ...by });
      return { revision, before: current.fleet, after, decided };
    } catch (err) {
      if (!(err instanceof StoreError && err.code === 'CONFLICT')) throw err;
      if (attempt >= maxAttempts) {
        throw new StoreError('CONFLICT', `${what}: the fleet changed concurrently ${attempt} times`, { cause: err });
      }
    }
  }
}

/**
 * Applies `edit` to pool `poolName` of the stored fleet (editFleet). Throws StoreError `NOT_FOUND` for a missing
 * pool, and what editFleet throws.
 */
export async function editPoolMembers(
  store: FleetStore,
  poolName: string,
  edit: MembersEdit,
  options: PoolEditOptions = {},
): Promise<PoolEditWritten | PoolEditPreview | PoolEditUnchanged> {
  return editFleet(
    store,
    `pool "${poolName}"`,
    (fleet, revision) => {
      const pool = fleet.pools.find((p) => p.name === poolName);
      if (!pool) throw new StoreError('NOT_FOUND', `pool "${poolName}": does not exist (revision ${revision})`);
      const members = edit(pool);
      if ('unchanged' in members) return members;
      return { ...fleet, pools: fleet.pools.map((p) => (p === pool ? { ...p, members } : p)) };
    },
    options,
  );
}

/** The VIP's new content, or the sentence that says why nothing needs writing. */
export type VipEdit = (vip: Vip) => Vip | { readonly unchanged: string };

/**
 * Applies `edit` to the VIP `key` (vipKey form, canonical) of the stored fleet (editFleet): the one implementation
 * behind `l4fleet vip` and the dashboard's VIP actions. Throws StoreError `NOT_FOUND` for a VIP not in the fleet, and
 * what editFleet throws.
 */
export async function editVip(
  store: FleetStore,
  key: string,
  edit: VipEdit,
  options: PoolEditOptions = {},
): Promise<PoolEditWritten | PoolEditPreview | PoolEditUnchanged> {
  return editFleet(
    store,
    `vip ${key}`,
    (fleet, revision) => {
      const vip = fleet.vips.find((v) => vipKey(v) === key);
      if (!vip) throw new StoreError('NOT_FOUND', `vip ${key}: not in the fleet (revision ${revision})`);
      const next = edit(vip);
      if ('unchanged' in next) return next;
      return { ...fleet, vips: fleet.vips.map((v) => (v === vip ? next : v)) };
    },
    options,
  );
}
