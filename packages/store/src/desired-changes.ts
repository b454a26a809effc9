/**
 * The history of the desired state with what each write changed (`l4fleet history`, the dashboard's "Changes"): the
 * writes getDesiredHistory() lists, each diffed against the write before it. Works on any FleetStore.
 */
import { diffFleets, type Fleet, type FleetChange } from '@l4fleet/config';
import { MAX_DESIRED_HISTORY } from './desired-history.js';
import type { DesiredRevision, FleetStore } from './types.js';

export interface DesiredChange extends DesiredRevision {
  /** The write behind the desired state now. */
  readonly current: boolean;
  /**
   * What it changed from the write before it; null when that one is not known (the first write, compacted away, or
   * past MAX_DESIRED_HISTORY) or either does not decode.
   */
  readonly changes: readonly FleetChange[] | null;
  /** Why changes is null, when it is not a write that does not decode: `first write`, `earlier writes compacted by etcd`. */
  readonly note?: string;
}

export interface DesiredChanges {
  /** Newest first. */
  readonly revisions: readonly DesiredChange[];
  /** Earlier writes are there beyond `limit`. */
  readonly more: boolean;
  /** Earlier writes were compacted away by etcd. */
  readonly compacted: boolean;
}

/** The fleet of each write; undefined where it does not read. */
async function fleetsOf(store: FleetStore, revisions: readonly DesiredRevision[]): Promise<(Fleet | undefined)[]> {
  const out: (Fleet | undefined)[] = [];
  for (const r of revisions) {
    if (r.invalid !== undefined) out.push(undefined);
    else out.push((await store.getDesiredAt(r.revision).catch(() => undefined))?.fleet);
  }
  return out;
}

/** The last `limit` writes (1-MAX_DESIRED_HISTORY), newest first, each with its changes. */
export async function desiredChanges(store: FleetStore, limit: number): Promise<DesiredChanges> {
  // One write more than shown: the oldest shown one's changes are against it.
  const h = await store.getDesiredHistory({ limit: Math.min(limit + 1, MAX_DESIRED_HISTORY) });
  const shown = h.revisions.slice(0, limit);
  const fleets = await fleetsOf(store, h.revisions);
  const revisions = shown.map((r, i): DesiredChange => {
    const [now, before] = [fleets[i], fleets[i + 1]];
    const changes = now && before ? diffFleets(before, now).changes : null;
    // h.more here only when limit + 1 went past MAX_DESIRED_HISTORY: the oldest shown has no write before it read.
    const note =
      h.revisions[i + 1] !== undefined
        ? undefined
        : h.more
          ? 'the write before it is beyond the limit'
          : h.compacted
            ? 'earlier writes compacted by etcd'
            : 'first write';
    return { ...r, current: i === 0, changes, ...(note !== undefined && changes === null ? { note } : {}) };
  });
  return { revisions, more: h.more || h.revisions.length > limit, compacted: h.compacted };
}
