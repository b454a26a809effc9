/**
 * Decided member status: one record per pool under `decided/`, written by the elected aggregator (fenced by its
 * election key) and read by every node. A record that does not decode is reported through onError; in a watch the
 * pool keeps its last good record (a node must not flip members because someone wrote a bad key).
 */
import type { MemberStatus } from '@l4fleet/config';
import { fenceOf } from './election.js';
import { StoreError, toStoreError } from './errors.js';
import { keys, MAX_TXN_BYTES, MAX_TXN_OPS } from './layout.js';
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
    const { ns, client } = this.ctx;
    const fence = options.leadership ? fenceOf(options.leadership) : undefined;
    if (options.leadership && (!fence || !options.leadership.isLeader())) {
      throw new StoreError('LEASE_LOST', `write decided: ${options.leadership.node} is not the leader`);
    }
    try {
      const current = await ns.getAll().prefix(keys.decided).exec();
      const stored = new Map(current.kvs.map((kv) => [kv.key.toString(), kv.value.toString()]));
      const puts: { key: string; value: string }[] = [];
      for (const [pool, rec] of groupByPool(decided)) {
        const value = encodePoolStatus(pool, rec);
        if (stored.get(keys.decidedPool(pool)) !== value) puts.push({ key: keys.decidedPool(pool), value });
      }
      let i = 0;
      while (i < puts.length) {
        const batch: typeof puts = [];
        let bytes = 0;
        for (
          let p = puts[i];
          p && batch.length < MAX_TXN_OPS && bytes + p.value.length < MAX_TXN_BYTES;
          p = puts[++i]
        ) {
          bytes += p.value.length;
          batch.push(p);
        }
        const first = puts[i];
        if (batch.length === 0 && first) {
          batch.push(first);
          i++;
        }
        // Fencing: the txn applies only while the leader's election key exists (its lease is alive).
        const txn = fence ? client.if(fence, 'Create', '>', 0) : ns.if(keys.decidedPool('_'), 'Create', '>', -1);
        const res = await txn.then(...batch.map((p) => ns.put(p.key).value(p.value))).commit();
        if (!res.succeeded)
          throw new StoreError('LEASE_LOST', `write decided: ${options.leadership?.node} lost leadership`);
      }
    } catch (err) {
      throw toStoreError(err, 'write decided status');
    }
  }
}
