/**
 * When a pool's backup members (`members[].backup`) take new flows: F5's "priority group activation" (a pool's
 * `min-active-members`), HAProxy's backup servers. The primaries (members not marked backup) are one priority group,
 * the backups the next. `minActiveMembers: N` (default 1) activates the backups while fewer than N primaries take new
 * flows (active, not decided down, weight above 0); then the backups share the table with the primaries left, by
 * weight. With the default, the backups serve only when no primary does, as before the setting existed.
 *
 * Why more than 1: a pool sized for its load at N members overloads its last one or two survivors; activating the
 * backups at N - 1 keeps the capacity instead of waiting for the last primary to fall. Like every table input it is
 * derived from the fleet and the decided status only, so every node builds the same table (Maglev §3.4), and the
 * backups stay in the index space, so their activation moves only the slots they take.
 */
import { type Problems, showValue } from './fields.js';
import { MAX_MEMBERS_PER_POOL } from './limits.js';
import type { Pool } from './types.js';

/** Backups take flows while fewer primaries than this do: 1, i.e. only when none does. */
export const DEFAULT_MIN_ACTIVE_MEMBERS = 1;

/**
 * Parses `pools[i].minActiveMembers`: `{}` when absent or 1 (the default; not written back, so a fleet that does not
 * use it stays readable by nodes that predate it), else `{minActiveMembers}`.
 */
export function minActiveMembersField(p: Problems, path: string, v: unknown): { minActiveMembers?: number } {
  if (v === undefined || v === DEFAULT_MIN_ACTIVE_MEMBERS) return {};
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > MAX_MEMBERS_PER_POOL) {
    p.add(
      path,
      `${showValue(v)} is not a number of members (1-${MAX_MEMBERS_PER_POOL}: backups take flows while fewer primaries do)`,
    );
    return {};
  }
  return { minActiveMembers: v };
}

/** The pool's setting (absent: 1). */
export function minActiveMembersOf(pool: Pick<Pool, 'minActiveMembers'>): number {
  return pool.minActiveMembers ?? DEFAULT_MIN_ACTIVE_MEMBERS;
}
