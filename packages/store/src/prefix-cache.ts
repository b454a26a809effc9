/**
 * A local copy of every key under a prefix, kept current by a ResumableWatch: one full read, then events.
 * Compaction re-reads everything. Consumers get the whole snapshot after each change (simple to reason about;
 * the prefixes cached this way hold at most nodes x pools small records).
 *
 * Every value passes its family's decoder (record-check.ts) before it enters the cache. A value that does not is
 * reported through onError (StoreError `INVALID_RECORD`) and is not used: the key is left out (`skip`, for list
 * families such as nodes and health reports) or keeps its last good value (`keep-last-good`, for decided status).
 * On the first load there is no last good value: a key refused then is left out, as with `skip` (the agent fills a
 * refused decided pool from its state file: agent etcd/decided-fallback.ts, docs/design/0002). Each change also
 * reports the keys whose current value was refused (until a good value or a delete of the key): what a reader
 * needs to tell a refused key from a deleted one, which the values alone do not show.
 */
import { type IKeyValue, type Namespace, Range } from 'etcd3';
import type { Logger } from 'pino';
import { invalidRecord, type StoreError, toStoreError } from './errors.js';
import { MAX_KEYS_PER_FAMILY } from './limits.js';
import { undecodable } from './record-check.js';
import { ResumableWatch } from './watch.js';

export interface CachedKv<T> {
  readonly value: T;
  readonly createRevision: number;
  readonly modRevision: number;
}

/**
 * Decodes a value or throws StoreError `INVALID_RECORD` (record-check.ts). Anything else it throws is reported as
 * `INVALID_RECORD` of that key too (record-check.ts undecodable): never as INTERNAL without a key.
 */
export type Decode<T> = (key: string, value: Buffer) => T;

/** What a rejected put does to a key already cached: drop it, or keep serving its last good value. */
export type OnInvalid = 'skip' | 'keep-last-good';

/**
 * Keys per range request of readPrefix: 32 x etcd's largest value (its default --max-request-bytes, 1.5 MiB) is
 * 48 MiB, below the client's 64 MiB receive limit (connection.ts) with room for keys and framing. One unpaged read
 * of health/ failed past that limit (27 nodes x 100 pools of 1,000 members is ~80 MiB) and the aggregator, unable
 * to read the reports, resigned for ever.
 */
export const READ_PAGE_KEYS = 32;

/** The kvs under `prefix`, at most `max`, read in pages by key, every page at the first page's revision. */
export async function rangeInPages(ns: Namespace, prefix: string, max: number) {
  const end = Range.prefix(prefix).end;
  let start = Buffer.from(prefix);
  let revision = 0;
  const kvs: IKeyValue[] = [];
  while (kvs.length < max) {
    const b = ns
      .getAll()
      .inRange(new Range(start, end))
      .limit(Math.min(READ_PAGE_KEYS, max - kvs.length));
    const res = await (revision > 0 ? b.revision(revision) : b).exec();
    if (revision === 0) revision = Number(res.header.revision);
    kvs.push(...res.kvs);
    const last = res.kvs.at(-1);
    if (!res.more || !last) break;
    start = Buffer.concat([last.key, Buffer.from([0])]); // the next key after the last one read
  }
  return { kvs, revision };
}

/**
 * The decoded values under `prefix` at one revision; bad ones reported to `onError`, left out of `entries` and their
 * keys listed in `refused`.
 */
export async function readPrefix<T>(
  ns: Namespace,
  prefix: string,
  decode: Decode<T>,
  onError: (err: StoreError) => void,
): Promise<{ entries: Map<string, CachedKv<T>>; refused: Set<string>; revision: number }> {
  // One more than the bound: more keys than that is itself a problem to report.
  const res = await rangeInPages(ns, prefix, MAX_KEYS_PER_FAMILY + 1);
  const entries = new Map<string, CachedKv<T>>();
  const refused = new Set<string>();
  for (const kv of res.kvs.slice(0, MAX_KEYS_PER_FAMILY)) {
    const key = kv.key.toString();
    try {
      entries.set(key, {
        value: decode(key, kv.value),
        createRevision: Number(kv.create_revision),
        modRevision: Number(kv.mod_revision),
      });
    } catch (err) {
      refused.add(key);
      onError(undecodable(key, 'value', err));
    }
  }
  if (res.kvs.length > MAX_KEYS_PER_FAMILY) {
    onError(invalidRecord(prefix, `keys: more than the limit of ${MAX_KEYS_PER_FAMILY}; the rest are ignored`));
  }
  return { entries, refused, revision: res.revision };
}

export interface PrefixCacheHandlers<T> {
  decode: Decode<T>;
  /** `refused`: the keys whose current value was refused (with `keep-last-good`, some still in `snapshot`). */
  onChange(snapshot: ReadonlyMap<string, CachedKv<T>>, revision: number, refused: ReadonlySet<string>): void;
  onError(err: StoreError): void;
}

export class PrefixCache<T> {
  private entries = new Map<string, CachedKv<T>>();
  /** Keys whose current value did not decode: dropped by a good value or a delete. */
  private refused = new Set<string>();
  private watch: ResumableWatch | undefined;

  constructor(
    private readonly ns: Namespace,
    private readonly prefix: string,
    private readonly handlers: PrefixCacheHandlers<T>,
    private readonly onInvalid: OnInvalid,
    private readonly log: Logger,
  ) {}

  private put(key: string, value: Buffer, createRevision: number, modRevision: number): void {
    let decoded: T;
    try {
      decoded = this.handlers.decode(key, value);
    } catch (err) {
      if (this.onInvalid === 'skip') this.entries.delete(key);
      this.refused.add(key);
      this.handlers.onError(undecodable(key, 'value', err));
      return;
    }
    this.refused.delete(key);
    if (!this.entries.has(key) && this.entries.size >= MAX_KEYS_PER_FAMILY) {
      this.handlers.onError(
        invalidRecord(key, `key: more than the limit of ${MAX_KEYS_PER_FAMILY} under ${this.prefix}`),
      );
      return;
    }
    this.entries.set(key, { value: decoded, createRevision, modRevision });
  }

  /** Full read; returns the header revision the snapshot is at. */
  private async load(): Promise<number> {
    const { entries, refused, revision } = await readPrefix(this.ns, this.prefix, this.handlers.decode, (err) =>
      this.handlers.onError(err),
    );
    if (this.onInvalid === 'keep-last-good') {
      // A key whose new value is bad keeps its old one; a key deleted meanwhile goes.
      for (const [key, old] of this.entries) if (refused.has(key) && !entries.has(key)) entries.set(key, old);
    }
    this.entries = entries;
    this.refused = refused;
    this.handlers.onChange(new Map(this.entries), revision, new Set(this.refused));
    return revision;
  }

  async start(): Promise<void> {
    let revision: number;
    try {
      revision = await this.load();
    } catch (err) {
      throw toStoreError(err, `read ${this.prefix}`);
    }
    this.watch = new ResumableWatch(
      this.ns,
      { prefix: this.prefix },
      revision,
      {
        onEvents: (events) => {
          for (const ev of events) {
            if (ev.type === 'put') this.put(ev.key, ev.value, ev.createRevision, ev.modRevision);
            else {
              this.entries.delete(ev.key);
              this.refused.delete(ev.key);
            }
          }
          this.handlers.onChange(
            new Map(this.entries),
            (events[events.length - 1] as { modRevision: number }).modRevision,
            new Set(this.refused),
          );
        },
        resync: () => this.load(),
        onError: (err) => this.handlers.onError(err),
      },
      this.log,
    );
    this.watch.start();
  }

  async close(): Promise<void> {
    await this.watch?.close();
  }
}

/** A typed view of one cache of a group. */
export interface CacheView<T> {
  snapshot(): ReadonlyMap<string, CachedKv<T>>;
  /** The keys whose current value was refused (PrefixCacheHandlers.onChange). */
  refused(): ReadonlySet<string>;
}

/**
 * Several prefix caches behind one watch: `add()` each (typed), then `start()`; `emit` runs once all have loaded
 * and after every change of any of them, with the highest revision seen.
 */
export class PrefixCacheGroup {
  private readonly caches: { start(): Promise<void>; close(): Promise<void> }[] = [];
  private started = false;
  private revision = 0;
  private emit: (revision: number) => void = () => undefined;

  constructor(
    private readonly ns: Namespace,
    private readonly onError: (err: StoreError) => void,
    private readonly log: Logger,
  ) {}

  add<T>(prefix: string, decode: Decode<T>, onInvalid: OnInvalid = 'skip'): CacheView<T> {
    let snap: ReadonlyMap<string, CachedKv<T>> = new Map();
    let refused: ReadonlySet<string> = new Set();
    const cache = new PrefixCache<T>(
      this.ns,
      prefix,
      {
        decode,
        onChange: (s, rev, r) => {
          snap = s;
          refused = r;
          this.revision = Math.max(this.revision, rev);
          if (this.started) this.emit(this.revision);
        },
        onError: (err) => this.onError(err),
      },
      onInvalid,
      this.log,
    );
    this.caches.push(cache);
    return { snapshot: () => snap, refused: () => refused };
  }

  async start(emit: (revision: number) => void): Promise<void> {
    this.emit = emit;
    try {
      for (const c of this.caches) await c.start();
    } catch (err) {
      await this.close();
      throw toStoreError(err, 'watch');
    }
    this.started = true;
    emit(this.revision);
  }

  async close(): Promise<void> {
    await Promise.all(this.caches.map((c) => c.close()));
  }
}
