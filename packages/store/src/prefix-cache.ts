/**
 * A local copy of every key under a prefix, kept current by a ResumableWatch: one full read, then events.
 * Compaction re-reads everything. Consumers get the whole snapshot after each change (simple to reason about;
 * the prefixes cached this way hold at most nodes x pools small records).
 */
import type { Namespace } from 'etcd3';
import type { Logger } from 'pino';
import { type StoreError, toStoreError } from './errors.js';
import { ResumableWatch } from './watch.js';

export interface CachedKv<T> {
  readonly value: T;
  readonly createRevision: number;
  readonly modRevision: number;
}

export interface PrefixCacheHandlers<T> {
  /** Decodes a value; throw StoreError INVALID_STATE to skip the key (reported through onError). */
  decode(key: string, value: Buffer): T;
  onChange(snapshot: ReadonlyMap<string, CachedKv<T>>, revision: number): void;
  onError(err: StoreError): void;
}

export class PrefixCache<T> {
  private readonly entries = new Map<string, CachedKv<T>>();
  private watch: ResumableWatch | undefined;

  constructor(
    private readonly ns: Namespace,
    private readonly prefix: string,
    private readonly handlers: PrefixCacheHandlers<T>,
    private readonly log: Logger,
  ) {}

  private put(key: string, value: Buffer, createRevision: number, modRevision: number): void {
    try {
      this.entries.set(key, { value: this.handlers.decode(key, value), createRevision, modRevision });
    } catch (err) {
      this.entries.delete(key);
      this.handlers.onError(toStoreError(err, `decode ${key}`));
    }
  }

  /** Full read; returns the header revision the snapshot is at. */
  private async load(): Promise<number> {
    const res = await this.ns.getAll().prefix(this.prefix).exec();
    this.entries.clear();
    for (const kv of res.kvs)
      this.put(kv.key.toString(), kv.value, Number(kv.create_revision), Number(kv.mod_revision));
    const revision = Number(res.header.revision);
    this.handlers.onChange(new Map(this.entries), revision);
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
            else this.entries.delete(ev.key);
          }
          this.handlers.onChange(
            new Map(this.entries),
            (events[events.length - 1] as { modRevision: number }).modRevision,
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
