/**
 * The memory store's copy of etcd's history of the desired-state pointer (desired-history.ts): every write, oldest
 * first, with the fleet it left, and a compaction that drops the older ones. The answers and errors are the etcd
 * store's (the contract suite runs both).
 */
import type { Fleet } from '@l4fleet/config';
import { checkHistoryLimit, desiredAtError } from './desired-history.js';
import { StoreError } from './errors.js';
import { keys } from './layout.js';
import type { DesiredHistory, DesiredRevision, DesiredState } from './types.js';

export class MemoryDesiredHistory {
  private readonly past: { entry: DesiredRevision; fleet?: Fleet }[] = [];
  private compactedBelow = 0;

  /** A write of the pointer; `fleet` absent for one that does not decode. */
  record(entry: DesiredRevision, fleet?: Fleet): void {
    this.past.push(fleet === undefined ? { entry } : { entry, fleet });
  }

  /**
   * As etcd's compaction: every write below `revision` goes except the last one at or below it, which etcd keeps as
   * the key's version then (readable from the compaction up to the next write, desired-history.ts).
   */
  compact(revision: number): void {
    this.compactedBelow = Math.max(this.compactedBelow, revision);
    while ((this.past[1]?.entry.revision ?? Number.POSITIVE_INFINITY) <= this.compactedBelow) this.past.shift();
  }

  history(limit: number): DesiredHistory {
    checkHistoryLimit(limit);
    const newest = [...this.past].reverse().map((p) => p.entry);
    const revisions = newest.slice(0, limit);
    const more = newest.length > limit;
    // As etcd: the walk reads the pointer one revision below the oldest write it holds, refused below the compaction.
    const below = (revisions.at(-1)?.revision ?? 0) - 1;
    const compacted = !more && below >= 1 && below < this.compactedBelow;
    return { revisions, more, compacted };
  }

  at(revision: number): DesiredState & { readonly appliedAt: string } {
    if (!Number.isSafeInteger(revision) || revision < 1) throw desiredAtError.notARevision(revision);
    const p = this.past.find((x) => x.entry.revision === revision);
    // A write compaction kept reads (the etcd store reads it where it is still visible); any other revision below it
    // was compacted, write or not.
    if (!p && revision < this.compactedBelow) throw desiredAtError.compacted(revision);
    if (!p) {
      const before = [...this.past].reverse().find((x) => x.entry.revision < revision)?.entry.revision;
      throw desiredAtError.noWrite(revision, before);
    }
    if (!p.fleet) throw new StoreError('INVALID_RECORD', p.entry.invalid ?? keys.pointer, { key: keys.pointer });
    const { entry } = p;
    return { fleet: structuredClone(p.fleet), revision, generation: entry.generation, appliedAt: entry.appliedAt };
  }
}
