/**
 * The history of the desired state with what each write changed (`l4fleet history`, the dashboard's "Changes"): the
 * writes getDesiredHistory() lists, each diffed against the write before it. Works on any FleetStore.
 */
import { diffFleets, type Fleet, type FleetChange } from '@l4fleet/config';
import { MAX_DESIRED_HISTORY } from './desired-history.js';
import { StoreError } from './errors.js';
import type { DesiredRevision, FleetStore } from './types.js';

export interface DesiredChange extends DesiredRevision {
  /** The write behind the desired state now. */
  readonly current: boolean;
  /**
   * What it changed from the write before it; null when that one is not known (the first write, compacted away, or
   * past MAX_DESIRED_HISTORY) or either does not decode.
   */
  readonly changes: readonly FleetChange[] | null;
  /**
   * Why changes is null, when it is not a pointer that does not decode (`invalid`): `first write`, `earlier writes
   * compacted by etcd`, `the write before it does not read`, `this write does not read: ...`.
   */
  readonly note?: string;
}

export interface DesiredChanges {
  /** Newest first. */
  readonly revisions: readonly DesiredChange[];
  /** Earlier writes are there beyond `limit`. */
  readonly more: boolean;
  /** Earlier writes were compacted away by etcd. */
  readonly compacted: boolean;
  /** The pointer was deleted outside l4fleet now, or before the oldest write listed (DesiredHistory.pointerDeleted). */
  readonly pointerDeleted?: true;
}

/** The oldest row's note when the pointer was deleted before it (a recover after a hand deletion). */
const DELETED_BEFORE_NOTE =
  'the pointer was deleted before this write; earlier writes may still be readable with `l4fleet get fleet --revision R`';

/** What a write's fleet read gave: the fleet, or why it does not read (the message). */
type Read = { readonly fleet: Fleet } | { readonly unreadable: string };

/**
 * The fleet of one write. A write that does not decode, or that etcd compacted since it was listed, is that row's
 * problem (shown, the rest listed); any other failure (etcd unreachable, a timeout) fails the whole listing, as any
 * other read does, rather than passing for a write that does not read.
 */
async function readWrite(store: FleetStore, r: DesiredRevision): Promise<Read> {
  if (r.invalid !== undefined) return { unreadable: r.invalid };
  try {
    return { fleet: (await store.getDesiredAt(r.revision)).fleet };
  } catch (err) {
    if (err instanceof StoreError && (err.code === 'INVALID_RECORD' || err.code === 'COMPACTED')) {
      return { unreadable: err.message };
    }
    throw err;
  }
}

/** The last `limit` writes (1-MAX_DESIRED_HISTORY), newest first, each with its changes. */
export async function desiredChanges(store: FleetStore, limit: number): Promise<DesiredChanges> {
  // One write more than shown: the oldest shown one's changes are against it.
  const h = await store.getDesiredHistory({ limit: Math.min(limit + 1, MAX_DESIRED_HISTORY) });
  const shown = h.revisions.slice(0, limit);
  const revisions: DesiredChange[] = [];
  // Pairwise as the walk goes: only this write's fleet and the one before it are held (a thousand 1,000-member
  // fleets read first and diffed after took gigabytes).
  let now = shown[0] === undefined ? undefined : await readWrite(store, shown[0]);
  for (const [i, r] of shown.entries()) {
    const prior = h.revisions[i + 1];
    const before = prior === undefined ? undefined : await readWrite(store, prior);
    const changes =
      now !== undefined && 'fleet' in now && before !== undefined && 'fleet' in before
        ? diffFleets(before.fleet, now.fleet).changes
        : null;
    // h.more here only when limit + 1 went past MAX_DESIRED_HISTORY: the oldest shown has no write before it read.
    const note =
      r.invalid !== undefined
        ? undefined
        : now !== undefined && 'unreadable' in now
          ? `this write does not read: ${now.unreadable}`
          : before !== undefined
            ? 'the write before it does not read'
            : h.more
              ? 'the write before it is beyond the limit'
              : h.compacted
                ? 'earlier writes compacted by etcd'
                : h.pointerDeleted
                  ? DELETED_BEFORE_NOTE
                  : 'first write';
    revisions.push({ ...r, current: i === 0, changes, ...(note !== undefined && changes === null ? { note } : {}) });
    now = before;
  }
  const deleted = h.pointerDeleted && h.revisions.length <= limit ? { pointerDeleted: true as const } : {};
  return { revisions, more: h.more || h.revisions.length > limit, compacted: h.compacted, ...deleted };
}
