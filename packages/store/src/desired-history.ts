/**
 * Earlier writes of the desired state, read from etcd's own MVCC history (no extra keys: nothing more is written per
 * apply, and nodes of earlier versions see no change). Every write of the pointer has its revision; reading the pointer
 * at one less than a write's revision gives the write before it, so the history is a walk back, one range read per
 * write. A write's fleet is read at its own revision: the chunks of that generation were still there then (the next
 * apply deletes them, at a later revision); for the write a compaction kept, where it is still visible (below). The walk ends at the first write, at the limit, or where etcd compacted its
 * history (`--auto-compaction-retention`, `etcdctl compact`): the history is as long as etcd keeps it.
 */
import type { Fleet } from '@l4fleet/config';
import { decodePointer, type Pointer } from './codec.js';
import { StoreError, toStoreError } from './errors.js';
import { keys } from './layout.js';
import type { StoreContext } from './store-context.js';
import type { DesiredHistory, DesiredRevision, DesiredState } from './types.js';

/** The most writes one history call walks back over. */
export const MAX_DESIRED_HISTORY = 1_000;

type ReadFleet = (p: Pointer, atRevision: number) => Promise<Fleet>;

interface PointerAt {
  readonly revision: number;
  readonly value: Buffer;
  /** The revision it was read at (the one asked for, or etcd's now): its chunks are there too. */
  readonly readAt: number;
}

/** The pointer as of `revision` (0: now): its value and the revision of the write that left it; undefined if absent. */
async function pointerAt(ctx: StoreContext, revision: number): Promise<PointerAt | undefined> {
  const get = ctx.ns.get(keys.pointer);
  const res = await (revision > 0 ? get.revision(revision) : get).exec();
  const kv = res.kvs[0];
  const readAt = revision > 0 ? revision : Number(res.header.revision);
  return kv ? { revision: Number(kv.mod_revision), value: kv.value, readAt } : undefined;
}

/**
 * The write at `revision` where it is still visible though etcd compacted past `revision` itself: a compaction keeps
 * each key's last version at or below it, so the write that was current then reads from the compaction up to the next
 * write (at the next write's revision - 1, its chunks too: that write deletes them). It is the oldest write history
 * lists; found by walking back from now, as history does. Undefined when no write has that revision.
 */
async function keptByCompaction(ctx: StoreContext, revision: number): Promise<PointerAt | undefined> {
  let p = await pointerAt(ctx, 0);
  for (let walked = 0; p !== undefined && walked <= MAX_DESIRED_HISTORY; walked++) {
    if (p.revision <= revision) return p.revision === revision ? p : undefined;
    p = await pointerAt(ctx, p.revision - 1);
  }
  return undefined;
}

function describe(p: PointerAt): DesiredRevision {
  try {
    const pointer = decodePointer(keys.pointer, p.value);
    const { generation, appliedAt, bytes, appliedBy } = pointer;
    return { revision: p.revision, generation, appliedAt, bytes, ...(appliedBy === undefined ? {} : { appliedBy }) };
  } catch (err) {
    const e = toStoreError(err, 'read desired history');
    return { revision: p.revision, generation: '', appliedAt: '', bytes: p.value.length, invalid: e.message };
  }
}

/** The errors of getDesiredAt(), one wording for the etcd store and the memory fake. */
export const desiredAtError = {
  notARevision: (revision: number) =>
    new StoreError('INVALID_STATE', `desired state at revision ${revision}: not a revision (a positive integer)`),
  compacted: (revision: number, cause?: unknown) =>
    new StoreError(
      'COMPACTED',
      `desired state at revision ${revision}: etcd compacted its history past it; \`l4fleet history\` lists what is left`,
      { cause, key: keys.pointer },
    ),
  noWrite: (revision: number, before: number | undefined) =>
    new StoreError(
      'NOT_FOUND',
      `desired state at revision ${revision}: no write of ${keys.pointer} has that revision` +
        `${before === undefined ? '' : ` (the one before it is ${before})`}; \`l4fleet history\` lists them`,
      { key: keys.pointer },
    ),
};

export function checkHistoryLimit(limit: number): void {
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_DESIRED_HISTORY) {
    throw new StoreError(
      'INVALID_STATE',
      `desired history: limit ${limit} is not a count of writes (1-${MAX_DESIRED_HISTORY.toLocaleString('en-US')})`,
    );
  }
}

/**
 * Whether the fleet's decided or history records were there at `revision` (0: now): written only once a fleet with
 * pools was served, so an absent pointer beside them was deleted by hand (desired.ts reads the pointer the same way).
 */
async function recordsAt(ctx: StoreContext, revision: number): Promise<boolean> {
  for (const prefix of [keys.decided, keys.history]) {
    const get = ctx.ns.getAll().prefix(prefix).limit(1);
    const found = await (revision > 0 ? get.revision(revision) : get).keys();
    if (found.length > 0) return true;
  }
  return false;
}

export async function desiredHistory(ctx: StoreContext, limit: number): Promise<DesiredHistory> {
  checkHistoryLimit(limit);
  const revisions: DesiredRevision[] = [];
  try {
    let at = 0;
    let p = await pointerAt(ctx, at);
    while (p !== undefined) {
      if (revisions.length === limit) return { revisions, more: true, compacted: false };
      revisions.push(describe(p));
      if (p.revision <= 1) return { revisions, more: false, compacted: false };
      at = p.revision - 1;
      try {
        p = await pointerAt(ctx, at);
      } catch (err) {
        const e = toStoreError(err, 'read desired history');
        if (e.code === 'COMPACTED') return { revisions, more: false, compacted: true };
        throw e;
      }
    }
    // Absent: before the first write, or deleted by hand (the walk cannot step over that: etcd gives no revision for
    // a key that is gone). Said, so the write after it is not taken for the first, nor an empty list for none ever.
    const deleted = await recordsAt(ctx, at).catch((err: unknown) => {
      // Compacted since the pointer was read there: the evidence is gone, so nothing is claimed.
      if (toStoreError(err, 'read desired history').code === 'COMPACTED') return false;
      throw err;
    });
    return { revisions, more: false, compacted: false, ...(deleted ? { pointerDeleted: true } : {}) };
  } catch (err) {
    throw toStoreError(err, 'read desired history');
  }
}

export async function desiredAt(
  ctx: StoreContext,
  revision: number,
  readFleet: ReadFleet,
): Promise<DesiredState & { appliedAt: string }> {
  if (!Number.isSafeInteger(revision) || revision < 1) throw desiredAtError.notARevision(revision);
  let p: PointerAt | undefined;
  try {
    p = await pointerAt(ctx, revision);
  } catch (err) {
    const e = toStoreError(err, `read desired state at revision ${revision}`);
    if (/future revision/i.test(e.message)) {
      throw new StoreError('NOT_FOUND', `desired state at revision ${revision}: etcd has not reached that revision`, {
        cause: e,
        key: keys.pointer,
      });
    }
    if (e.code !== 'COMPACTED') throw e;
    p = await keptByCompaction(ctx, revision).catch((walk: unknown) => {
      const w = toStoreError(walk, `read desired state at revision ${revision}`);
      throw w.code === 'COMPACTED' ? desiredAtError.compacted(revision, w) : w;
    });
    if (p === undefined) throw desiredAtError.compacted(revision, e);
  }
  if (p === undefined || p.revision !== revision) throw desiredAtError.noWrite(revision, p?.revision);
  try {
    const pointer = decodePointer(keys.pointer, p.value);
    const fleet = await readFleet(pointer, p.readAt);
    return { fleet, revision, generation: pointer.generation, appliedAt: pointer.appliedAt };
  } catch (err) {
    throw toStoreError(err, `read desired state at revision ${revision}`);
  }
}
