/**
 * The desired state on etcd. apply() writes the document's chunks under a new generation, then switches the pointer
 * in ONE txn guarded by the pointer's mod revision; the same txn deletes every other generation. Readers read the
 * pointer and the chunks at the same revision, so they see the old or the new fleet, never a mix. The pointer is
 * checked against its own claims (limits.ts) before any chunk is fetched, and each chunk as it arrives.
 */
import { randomBytes } from 'node:crypto';
import type { Fleet } from '@l4fleet/config';
import { Range } from 'etcd3';
import {
  checkChunk,
  decodeDocument,
  decodePointer,
  encodeDocument,
  newGenerationId,
  type Pointer,
  salvageHashSeed,
} from './codec.js';
import { deletedByHand, outcomeUnknown, skipped } from './desired-errors.js';
import { desiredAt, desiredHistory } from './desired-history.js';
import { StoreError, type StoreErrorCode, toStoreError } from './errors.js';
import { keys } from './layout.js';
import type { StoreContext } from './store-context.js';
import { tracked } from './store-context.js';
import type { ApplyOptions, ApplyResult, DesiredHistory, DesiredState, Watch, WatchListener } from './types.js';
import { ResumableWatch } from './watch.js';

export const EMPTY_FLEET: Fleet = Object.freeze({ pools: [], vips: [] });
const CHUNK_WRITE_CONCURRENCY = 4;
const CHUNK_READ_CONCURRENCY = 4;

function randomSeed(): number {
  return randomBytes(4).readUInt32BE(0);
}

/** The key right after every key with this prefix (etcd range end for a prefix). */
function prefixEnd(prefix: string): string {
  return prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
}

interface ReadPointer {
  readonly pointer: Pointer | undefined;
  readonly modRevision: number;
  readonly headerRevision: number;
  readonly invalid: StoreError | undefined;
  /** The hash seed of an invalid pointer, when still readable. */
  readonly salvagedSeed: number | undefined;
}

/**
 * Reads of one desired revision failing with an error that is the record's own fault (RECORD_FAULT) before the watch
 * skips it (watchDesired): the event loop's reads at the event's revision, and the full re-reads of the same pointer
 * revision (after a compacted read, or a resumed watch).
 */
const NON_TRANSIENT_ATTEMPTS = 3;

/**
 * Read failures of a desired revision that are the record's fault, which no retry of the same revision helps: the
 * watch skips that revision after NON_TRANSIENT_ATTEMPTS. INVALID_RECORD (the checks, and decodePointer's wrap of a
 * RangeError/TypeError) is skipped at once. Not INTERNAL or AUTH: etcd restarting ends reads with gRPC INTERNAL
 * (RST_STREAM) or CANCELLED, which toStoreError cannot tell from a bug, and a skipped revision is never read again
 * (the watch resumes after it), so that node would keep the old fleet while its peers run the new one.
 */
const RECORD_FAULT: ReadonlySet<string> = new Set(['TOO_LARGE']);

/** Failures after which a sent request may still have been applied (or may still be, once etcd resumes). */
const MAYBE_SENT: ReadonlySet<string> = new Set(['UNAVAILABLE', 'TIMEOUT', 'INTERNAL']);

export class DesiredStore {
  constructor(private readonly ctx: StoreContext) {}

  private async readPointer(): Promise<ReadPointer> {
    const res = await this.ctx.ns.get(keys.pointer).exec();
    const kv = res.kvs[0];
    const headerRevision = Number(res.header.revision);
    if (!kv) {
      // No pointer is the empty fleet only before the first apply. Decided status and table history are written
      // for a fleet's pools and outlive it (decided keeps removed pools), so finding either means the pointer was
      // deleted by hand: a restarted node must not read that as "withdraw every VIP" (it keeps serving, as a
      // running node does on the delete event), and `l4fleet recover` replaces it.
      const left = await this.recordsLeft();
      const invalid = left ? deletedByHand(left) : undefined;
      return { pointer: undefined, modRevision: 0, headerRevision, invalid, salvagedSeed: undefined };
    }
    const modRevision = Number(kv.mod_revision);
    try {
      const pointer = decodePointer(keys.pointer, kv.value);
      return { pointer, modRevision, headerRevision, invalid: undefined, salvagedSeed: undefined };
    } catch (err) {
      const invalid = toStoreError(err, 'read');
      return { pointer: undefined, modRevision, headerRevision, invalid, salvagedSeed: salvageHashSeed(kv.value) };
    }
  }

  /** The first key under decided/ or history/, if any (a fleet with pools was served here). */
  private async recordsLeft(): Promise<string | undefined> {
    for (const prefix of [keys.decided, keys.history]) {
      const found = await this.ctx.ns.getAll().prefix(prefix).limit(1).keys();
      if (found[0] !== undefined) return found[0];
    }
    return undefined;
  }

  /** Reads the generation the pointer names, at the revision the pointer was read at; each chunk checked on arrival. */
  private async readFleet(p: Pointer, atRevision: number): Promise<Fleet> {
    const chunks: Buffer[] = [];
    for (let i = 0; i < p.chunks; i += CHUNK_READ_CONCURRENCY) {
      const batch = Array.from({ length: Math.min(CHUNK_READ_CONCURRENCY, p.chunks - i) }, (_, j) => i + j);
      const got = await Promise.all(
        batch.map(async (n) => {
          const res = await this.ctx.ns.get(keys.chunk(p.generation, n)).revision(atRevision).exec();
          return checkChunk(keys.pointer, p, n, res.kvs[0]?.value);
        }),
      );
      chunks.push(...got);
    }
    return decodeDocument(keys.pointer, p, chunks);
  }

  getDesiredHistory(limit: number): Promise<DesiredHistory> {
    return desiredHistory(this.ctx, limit);
  }

  getDesiredAt(revision: number): Promise<DesiredState & { appliedAt: string }> {
    return desiredAt(this.ctx, revision, (p, at) => this.readFleet(p, at));
  }

  async getDesired(): Promise<DesiredState> {
    try {
      const cur = await this.readPointer();
      if (cur.invalid) throw cur.invalid;
      if (!cur.pointer) return { fleet: EMPTY_FLEET, revision: 0, generation: '' };
      const fleet = await this.readFleet(cur.pointer, cur.headerRevision);
      return { fleet, revision: cur.modRevision, generation: cur.pointer.generation };
    } catch (err) {
      throw toStoreError(err, 'read desired state');
    }
  }

  /**
   * `ours`: the pointer's revision if it names `generation` now (a switch that did land), else undefined; `now`: the
   * pointer's revision as read (what a lost race lost to).
   */
  private async landed(generation: string): Promise<{ ours: number | undefined; now: number }> {
    const cur = await this.readPointer();
    return { ours: cur.pointer?.generation === generation ? cur.modRevision : undefined, now: cur.modRevision };
  }

  /** Recovery only replaces a desired state that does not read: a bad pointer, or a good one naming bad chunks. */
  private async assertInvalid(cur: ReadPointer): Promise<void> {
    if (cur.invalid) return;
    if (cur.pointer) {
      try {
        await this.readFleet(cur.pointer, cur.headerRevision);
      } catch (err) {
        const e = toStoreError(err, 'recover (read)');
        if (e.code === 'INVALID_RECORD') return;
        throw e;
      }
    }
    throw new StoreError(
      'CONFLICT',
      `recover: the desired state reads fine (${keys.pointer} ${cur.pointer ? `at revision ${cur.modRevision}` : 'absent'}); ` +
        'nothing to recover: apply normally',
      { key: keys.pointer },
    );
  }

  async apply(fleet: Fleet, options: ApplyOptions = {}): Promise<ApplyResult> {
    const { ns, log } = this.ctx;
    let cur: ReadPointer;
    try {
      cur = await this.readPointer();
    } catch (err) {
      throw toStoreError(err, 'apply (read)');
    }
    if (options.recoverInvalid) await this.assertInvalid(cur);
    const expect = options.expectRevision ?? cur.modRevision;
    // `now`: the pointer's revision as last read; after a lost switch that is the re-read, not the one read above.
    const conflict = (now: number) =>
      new StoreError(
        'CONFLICT',
        `apply: the desired state changed since revision ${expect} (now ${now}); re-read and retry`,
      );
    if (cur.modRevision !== expect) throw conflict(cur.modRevision);
    const stored = cur.pointer?.hashSeed ?? cur.salvagedSeed;
    const hashSeed = fleet.hashSeed ?? stored ?? randomSeed();
    const seedSource =
      fleet.hashSeed !== undefined ? 'fleet' : cur.pointer ? 'stored' : stored !== undefined ? 'salvaged' : 'new';
    const generation = newGenerationId();
    let doc: ReturnType<typeof encodeDocument>;
    try {
      doc = encodeDocument({ ...fleet, hashSeed }, generation, new Date(), options.by);
      for (let i = 0; i < doc.chunks.length; i += CHUNK_WRITE_CONCURRENCY) {
        await Promise.all(
          doc.chunks.slice(i, i + CHUNK_WRITE_CONCURRENCY).map((c, j) =>
            ns
              .put(keys.chunk(generation, i + j))
              .value(c)
              .exec(),
          ),
        );
      }
    } catch (err) {
      throw toStoreError(err, 'apply');
    }
    const gen = keys.generation(generation);
    let revision: number;
    try {
      const res = await ns
        .if(keys.pointer, 'Mod', '==', expect)
        .then(
          ns.put(keys.pointer).value(JSON.stringify(doc.pointer)),
          // Garbage-collect every other generation: old ones, and orphans of applies that crashed or lost a race
          // (a racing apply's own flip is guarded by the revision this txn changes, so it fails anyway).
          ns.delete().range(new Range(keys.generations, gen)),
          ns.delete().range(new Range(prefixEnd(gen), prefixEnd(keys.generations))),
        )
        .commit();
      // Not succeeded: a conflict, or an earlier attempt of this very txn (retried on another endpoint) that landed.
      const seen = res.succeeded ? { ours: Number(res.header.revision), now: 0 } : await this.landed(generation);
      if (seen.ours === undefined) {
        await ns
          .delete()
          .prefix(gen)
          .exec()
          .catch(() => undefined);
        throw conflict(seen.now);
      }
      revision = seen.ours;
    } catch (err) {
      const e = toStoreError(err, 'apply');
      if (!MAYBE_SENT.has(e.code)) throw e;
      // The switch was sent and etcd did not answer: it may have landed, or may land once etcd resumes (a frozen
      // member forwards it late). Look once; if that does not settle it, say so. The chunks stay: the pointer may
      // yet name them (the next apply collects them otherwise).
      const seen = await this.landed(generation).catch(() => undefined);
      if (seen?.ours === undefined) throw outcomeUnknown(generation, doc.pointer.sha256, expect, e);
      revision = seen.ours;
    }
    log.info({ event: 'desiredApplied', revision, generation, bytes: doc.pointer.bytes, chunks: doc.chunks.length });
    return { revision, generation, hashSeed, seedSource, bytes: doc.pointer.bytes, chunks: doc.chunks.length };
  }

  async watchDesired(listener: WatchListener<DesiredState>): Promise<Watch> {
    const { ns, log } = this.ctx;
    const onError = (err: StoreError) => {
      log.warn({ event: 'desiredWatchError', code: err.code, err: err.message });
      listener.onError?.(err);
    };
    // Reads retried until they succeed report the first failure and each change of code, repeats at debug (as
    // ResumableWatch.failed): each retry warned and called onError (and the agent warned again), two lines per node
    // every 2 s for a whole outage or refusal. One event's read loop is one run, however it ends (read, skipped,
    // invalid): reset when it starts, since a run left set by a skip hid the next outage at debug.
    let failing: StoreErrorCode | undefined;
    const retryFailed = (err: StoreError) => {
      if (failing === err.code) return log.debug({ event: 'desiredWatchError', code: err.code, err: err.message });
      failing = err.code;
      onError(err);
    };
    let wake: () => void = () => undefined; // ends a pause at close()
    const pause = (attempt: number) =>
      new Promise<void>((r) => {
        const timer = setTimeout(r, Math.min(2_000, 100 * 2 ** attempt));
        wake = () => {
          clearTimeout(timer);
          r();
        };
      });
    // Full re-reads of a pointer revision that failed with the record at fault: tried NON_TRANSIENT_ATTEMPTS times
    // (by resyncUntilRead or the resumed watch's resync alike), then reported and skipped as the event loop does;
    // retried for ever, each node read a generation too large to read every 2 s and never said it was skipped.
    const faults = { revision: -1, attempts: 0 };
    let lastDelivered = -1;
    const deliver = (s: DesiredState) => {
      if (s.revision === lastDelivered) return;
      lastDelivered = s.revision;
      listener.onUpdate(s);
    };
    // Full read: delivers the current state (if valid) and returns the revision to watch after.
    const resync = async (): Promise<number> => {
      const cur = await this.readPointer();
      if (cur.invalid) onError(cur.invalid);
      else if (!cur.pointer) {
        // No pointer before any apply is the empty fleet; after a fleet was delivered only a hand deletion (seen
        // here when a resync after compaction skipped the delete event): keep that fleet, as on the delete event.
        if (lastDelivered > 0) onError(deletedByHand(undefined));
        else deliver({ fleet: EMPTY_FLEET, revision: 0, generation: '' });
      } else {
        try {
          const fleet = await this.readFleet(cur.pointer, cur.headerRevision);
          deliver({ fleet, revision: cur.modRevision, generation: cur.pointer.generation });
        } catch (err) {
          const e = toStoreError(err, 'read desired state');
          if (RECORD_FAULT.has(e.code)) {
            if (faults.revision !== cur.modRevision) Object.assign(faults, { revision: cur.modRevision, attempts: 0 });
            faults.attempts += 1;
            if (faults.attempts < NON_TRANSIENT_ATTEMPTS) throw e;
            onError(skipped(e, cur.modRevision, cur.pointer.generation, NON_TRANSIENT_ATTEMPTS));
          } else if (e.code !== 'INVALID_RECORD') throw e;
          else onError(e);
        }
      }
      return cur.headerRevision;
    };
    let closed = false;
    // What a re-read after a compacted generation read delivered is as of this revision: events up to it are older.
    let resyncedAt = 0;
    const resyncUntilRead = async (): Promise<void> => {
      for (let attempt = 0; !closed; attempt++) {
        try {
          resyncedAt = await resync();
          return;
        } catch (err) {
          const e = toStoreError(err, 'watch desired state (re-read after compaction)');
          // The record's fault is reported once resync gives up on it (skipped), as in the event loop.
          if (!RECORD_FAULT.has(e.code)) retryFailed(e);
          await pause(attempt);
        }
      }
    };
    const after = await resync().catch((err) => {
      throw toStoreError(err, 'watch desired state');
    });
    const watch = new ResumableWatch(
      ns,
      { key: keys.pointer },
      after,
      {
        onEvents: async (events) => {
          for (const ev of events) {
            if (ev.modRevision <= resyncedAt) continue;
            if (ev.type === 'delete') {
              onError(deletedByHand(undefined));
              continue;
            }
            let pointer: Pointer;
            try {
              pointer = decodePointer(keys.pointer, ev.value);
            } catch (err) {
              onError(toStoreError(err, 'watch desired state'));
              continue;
            }
            // Read the generation as of this event's revision; retry (capped backoff) while etcd fails, re-read
            // all if that revision was compacted meanwhile. Only a failure that is the record's fault (RECORD_FAULT)
            // is tried NON_TRANSIENT_ATTEMPTS times, then reported and skipped: retried for ever, it held every
            // later apply back (this loop serializes events), while the last good fleet keeps serving either way.
            failing = undefined;
            for (let attempt = 0; !closed; attempt++) {
              try {
                const fleet = await this.readFleet(pointer, ev.modRevision);
                deliver({ fleet, revision: ev.modRevision, generation: pointer.generation });
                break;
              } catch (err) {
                const e = toStoreError(err, 'read desired generation');
                if (e.code === 'INVALID_RECORD') {
                  onError(e);
                  break;
                }
                if (e.code === 'COMPACTED') {
                  // Until it reads: thrown, it ended the handler and the watch, already past this event, never
                  // read it again (the node kept the old fleet until the next apply). The rest of the batch is older.
                  await resyncUntilRead();
                  return;
                }
                if (RECORD_FAULT.has(e.code)) {
                  if (attempt + 1 < NON_TRANSIENT_ATTEMPTS) {
                    await pause(attempt);
                    continue;
                  }
                  onError(skipped(e, ev.modRevision, pointer.generation, NON_TRANSIENT_ATTEMPTS));
                  break;
                }
                retryFailed(e);
                await pause(attempt);
              }
            }
          }
        },
        resync,
        onError,
      },
      log,
    );
    watch.start();
    return tracked(this.ctx, async () => {
      closed = true;
      wake();
      await watch.close();
    });
  }
}
