/**
 * Decided member status: one record per pool under `decided/`, written by the elected aggregator (fenced by its
 * election key) and read by every node. A record that does not decode is reported through onError; in a watch the
 * pool keeps its last good record (a node must not flip members because someone wrote a bad key).
 */
import type { MemberRamp, MemberStatus } from '@l4fleet/config';
import { toStoreError } from './errors.js';
import { writeFencedPrefix } from './fenced-write.js';
import { keys, NODE_NAME } from './layout.js';
import type { CachedKv } from './prefix-cache.js';
import { checkPoolKey, decodePoolStatus, type PoolStatusRecord } from './record-check.js';
import { type PoolRecordFamily, readPoolRecords, watchPoolRecords } from './record-family.js';
import { encodeDecidedPools, memberEntries, rampEntries } from './records.js';
import type { StoreContext } from './store-context.js';
import type { DecidedState, DecidedWriteOptions, Watch, WatchListener } from './types.js';

function decidedMap(snap: ReadonlyMap<string, CachedKv<PoolStatusRecord>>): Map<string, MemberStatus> {
  const out = new Map<string, MemberStatus>();
  for (const { value } of snap.values()) for (const [member, s] of memberEntries(value)) out.set(member, s);
  return out;
}

function rampMap(snap: ReadonlyMap<string, CachedKv<PoolStatusRecord>>): Map<string, MemberRamp> {
  const out = new Map<string, MemberRamp>();
  for (const { value } of snap.values()) for (const [member, r] of rampEntries(value)) out.set(member, r);
  return out;
}

/** The pool a `decided/<pool>` key names; undefined for a key that names none (a longer key, the prefix itself). */
function poolOfKey(key: string): string | undefined {
  const pool = key.slice(keys.decided.length);
  return NODE_NAME.test(pool) ? pool : undefined;
}

/**
 * Which `decided/<pool>` keys the state holds: the pools whose record is served (a record with no member among them)
 * and those whose key holds a refused record with none served instead. Decisions alone do not tell these apart
 * from a key deleted (the agent's decided-fallback.ts stands its state file in for the refused ones only).
 */
function poolSets(records: ReadonlyMap<string, CachedKv<PoolStatusRecord>>, refused: ReadonlySet<string>) {
  const pools = new Set<string>();
  for (const { value } of records.values()) pools.add(value.pool);
  const refusedPools = new Set<string>();
  for (const key of refused) {
    const pool = poolOfKey(key);
    if (pool !== undefined && !pools.has(pool)) refusedPools.add(pool);
  }
  return { pools, refusedPools };
}

/** A decided record: `decided/<pool>`, the key checked (a longer key is an invalid record, not pool <last>). */
export const decodeDecided = (k: string, v: Buffer): PoolStatusRecord => {
  checkPoolKey(k, keys.decided);
  return decodePoolStatus(k, v);
};

const decidedRecords: PoolRecordFamily<PoolStatusRecord, DecidedState> = {
  prefix: keys.decided,
  decode: decodeDecided,
  what: 'read decided status',
  toState: (records, revision, refused) => ({
    decided: decidedMap(records),
    ramps: rampMap(records),
    revision,
    ...poolSets(records, refused),
  }),
};

export class DecidedStore {
  constructor(private readonly ctx: StoreContext) {}

  async getDecided(): Promise<DecidedState> {
    return await readPoolRecords(this.ctx, decidedRecords);
  }

  async watchDecided(listener: WatchListener<DecidedState>): Promise<Watch> {
    return await watchPoolRecords(this.ctx, decidedRecords, listener);
  }

  /**
   * One transaction per changed pool: a pool's record beyond MAX_TXN_BYTES (~27 bytes a member with default names,
   * ~55 more with ramps: ~38,000 members) is refused before sending, naming decided/<pool> and its size, and the
   * other pools are still written; the refusal (TOO_LARGE, "the other records written" only when some were) is
   * thrown once they are. Any other failure, etcd's NOSPACE alarm (NO_SPACE) included, stops the write and is thrown.
   */
  async writeDecided(decided: ReadonlyMap<string, MemberStatus>, options: DecidedWriteOptions = {}): Promise<void> {
    const wanted = new Map<string, string>();
    for (const [pool, value] of encodeDecidedPools(decided, options.ramps ?? new Map(), options.pools)) {
      wanted.set(keys.decidedPool(pool), value);
    }
    try {
      await writeFencedPrefix(this.ctx, {
        prefix: keys.decided,
        wanted,
        deleteOthers: false,
        putsApart: true,
        what: 'write decided',
        ...(options.leadership ? { leadership: options.leadership } : {}),
      });
    } catch (err) {
      throw toStoreError(err, 'write decided status');
    }
  }
}
