/**
 * Decided member status: one record per pool under `decided/`, written by the elected aggregator (fenced by its
 * election key) and read by every node. A record that does not decode is reported through onError; in a watch the
 * pool keeps its last good record (a node must not flip members because someone wrote a bad key).
 */
import type { MemberStatus } from '@l4fleet/config';
import type { StoreError } from './errors.js';
import { toStoreError } from './errors.js';
import { writeFencedPrefix } from './fenced-write.js';
import { keys } from './layout.js';
import { type CachedKv, PrefixCacheGroup, readPrefix } from './prefix-cache.js';
import { decodePoolStatus, type PoolStatusRecord } from './record-check.js';
import { encodePoolStatus, groupByPool, memberEntries } from './records.js';
import { type StoreContext, tracked } from './store-context.js';
import type { DecidedState, Leadership, Watch, WatchListener } from './types.js';

function decidedMap(snap: ReadonlyMap<string, CachedKv<PoolStatusRecord>>): Map<string, MemberStatus> {
  const out = new Map<string, MemberStatus>();
  for (const { value } of snap.values()) for (const [member, s] of memberEntries(value)) out.set(member, s);
  return out;
}

export class DecidedStore {
  constructor(private readonly ctx: StoreContext) {}

  private warnInvalid = (err: StoreError) =>
    this.ctx.log.warn({ event: 'invalidRecord', key: err.key, code: err.code, err: err.message });

  async getDecided(): Promise<DecidedState> {
    try {
      const { entries, revision } = await readPrefix(this.ctx.ns, keys.decided, decodePoolStatus, this.warnInvalid);
      return { decided: decidedMap(entries), revision };
    } catch (err) {
      throw toStoreError(err, 'read decided status');
    }
  }

  async watchDecided(listener: WatchListener<DecidedState>): Promise<Watch> {
    const group = new PrefixCacheGroup(
      this.ctx.ns,
      (err) => {
        this.warnInvalid(err);
        listener.onError?.(err);
      },
      this.ctx.log,
    );
    const decided = group.add(keys.decided, decodePoolStatus, 'keep-last-good');
    await group.start((revision) => listener.onUpdate({ decided: decidedMap(decided.snapshot()), revision }));
    return tracked(this.ctx, () => group.close());
  }

  async writeDecided(
    decided: ReadonlyMap<string, MemberStatus>,
    options: { leadership?: Leadership } = {},
  ): Promise<void> {
    const wanted = new Map<string, string>();
    for (const [pool, rec] of groupByPool(decided)) wanted.set(keys.decidedPool(pool), encodePoolStatus(pool, rec));
    try {
      await writeFencedPrefix(this.ctx, {
        prefix: keys.decided,
        wanted,
        deleteOthers: false,
        what: 'write decided',
        ...(options.leadership ? { leadership: options.leadership } : {}),
      });
    } catch (err) {
      throw toStoreError(err, 'write decided status');
    }
  }
}
