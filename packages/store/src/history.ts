/**
 * Table history (second chance, docs/design/0011-second-chance.md): one record per pool under `history/`, written
 * by the elected aggregator (fenced by its election key, like decided status) and read by every node, which derives
 * the previous owners of its tables from it (@l4fleet/config buildVipTable). A record that does not decode is
 * reported through onError; in a watch the pool keeps its last good record (a bad key must not move previous owners
 * on some nodes and not on others).
 */
import type { PoolHistory, TableHistory } from '@l4fleet/config';
import { StoreError, toStoreError } from './errors.js';
import { writeFencedPrefix } from './fenced-write.js';
import { decodePoolHistory, encodePoolHistory } from './history-record.js';
import { keys, MAX_TXN_BYTES } from './layout.js';
import type { CachedKv } from './prefix-cache.js';
import { checkPoolKey } from './record-check.js';
import { type PoolRecordFamily, readPoolRecords, watchPoolRecords } from './record-family.js';
import { putBytes } from './request-size.js';
import type { StoreContext } from './store-context.js';
import type { Leadership, TableHistoryState, Watch, WatchListener } from './types.js';

function historyMap(snap: ReadonlyMap<string, CachedKv<PoolHistory>>): Map<string, PoolHistory> {
  const out = new Map<string, PoolHistory>();
  for (const { value } of snap.values()) out.set(value.pool, value);
  return out;
}

/**
 * The record as written: earlier tables dropped from the oldest until it fits MAX_TXN_BYTES (1 MiB, the budget of
 * every batched write: etcd refuses a request beyond its default --max-request-bytes, 1.5 MiB, which 0002 keeps);
 * undefined when even the current table alone does not (~25,000 members with default names: no second chance,
 * logged). Readers still take records up to MAX_RECORD_BYTES (written by earlier versions to a raised limit).
 */
export function fittedHistoryValue(h: PoolHistory): string | undefined {
  for (let n = h.earlier.length; n >= 0; n--) {
    const value = encodePoolHistory({ ...h, earlier: h.earlier.slice(0, n) });
    if (putBytes(keys.historyPool(h.pool), value) <= MAX_TXN_BYTES) return value; // the bound writeFencedPrefix checks
  }
  return undefined;
}

/**
 * Each key of `history` is its record's pool: the record is stored under `history/<key>` and names its pool, so a
 * mismatch would write a record every reader refuses (its key is not its pool) and, as the write makes `history/`
 * exactly the map, delete the good record of the pool it names.
 */
export function checkHistoryKeys(history: TableHistory): void {
  for (const [key, h] of history) {
    if (key !== h.pool) {
      throw new StoreError(
        'INVALID_STATE',
        `write table history: key ${JSON.stringify(key)} holds the history of pool ${JSON.stringify(h.pool)} (each key must be its record's pool)`,
      );
    }
  }
}

/** A table history record: `history/<pool>`, the key checked (a longer key is an invalid record, not pool <last>). */
export const decodeHistory = (k: string, v: Buffer): PoolHistory => {
  checkPoolKey(k, keys.history);
  return decodePoolHistory(k, v);
};

const historyRecords: PoolRecordFamily<PoolHistory, TableHistoryState> = {
  prefix: keys.history,
  decode: decodeHistory,
  what: 'read table history',
  toState: (records, revision) => ({ history: historyMap(records), revision }),
};

export class HistoryStore {
  constructor(private readonly ctx: StoreContext) {}

  async getTableHistory(): Promise<TableHistoryState> {
    return await readPoolRecords(this.ctx, historyRecords);
  }

  async watchTableHistory(listener: WatchListener<TableHistoryState>): Promise<Watch> {
    return await watchPoolRecords(this.ctx, historyRecords, listener);
  }

  /**
   * Makes `history/` exactly `history` (changed pools put, others deleted); fenced by `leadership`. Each pool's
   * record is its own transaction: a record etcd refuses (TOO_LARGE, thrown after the others were written) does
   * not keep the other pools' records from being updated or expired.
   */
  async writeTableHistory(history: TableHistory, options: { leadership?: Leadership } = {}): Promise<void> {
    checkHistoryKeys(history);
    const wanted = new Map<string, string>();
    for (const [pool, h] of history) {
      const value = fittedHistoryValue(h);
      if (value === undefined) {
        this.ctx.log.warn({ event: 'historyTooLarge', pool, limit: MAX_TXN_BYTES });
        continue;
      }
      wanted.set(keys.historyPool(pool), value);
    }
    try {
      await writeFencedPrefix(this.ctx, {
        prefix: keys.history,
        wanted,
        deleteOthers: true,
        putsApart: true,
        what: 'write table history',
        ...(options.leadership ? { leadership: options.leadership } : {}),
      });
    } catch (err) {
      throw toStoreError(err, 'write table history');
    }
  }
}
