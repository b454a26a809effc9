import type { HistoryMember, PoolHistory } from '@l4fleet/config';
import pino from 'pino';
import { describe, expect, test } from 'vitest';
import { fittedHistoryValue, HistoryStore } from './history.js';
import { decodePoolHistory } from './history-record.js';
import { keys, MAX_TXN_BYTES } from './layout.js';
import type { StoreContext } from './store-context.js';

/** etcd's default --max-request-bytes: 1.5 MiB. */
const ETCD_MAX_REQUEST_BYTES = 1.5 * 1024 * 1024;

const membersOf = (n: number, from = 0): HistoryMember[] =>
  Array.from({ length: n }, (_v, i) => {
    const k = i + from;
    const address = `198.${18 + (k >> 16)}.${(k >> 8) & 255}.${k & 255}`;
    return { name: `${address}:80`, address, port: 80, weight: 1 };
  }).sort((a, b) => (a.name < b.name ? -1 : 1));

/** A pool of `n` members with 4 earlier tables (one member fewer each). */
const historyOf = (pool: string, n: number): PoolHistory => ({
  pool,
  current: membersOf(n),
  earlier: [1, 2, 3, 4].map((k) => ({ untilMs: 1_700_000_000_000 - k, members: membersOf(n - k, k) })),
});

type Op = { put: string; value: string } | { del: string };

/**
 * Just enough of etcd3's Namespace for writeFencedPrefix without a leadership: getAll, if/then/commit, put, delete.
 * A transaction larger than etcd's default request limit is refused as etcd refuses it, and so is any put of a
 * key in `refused` (as if that one record were too large for this etcd).
 */
function fakeEtcd(refused: ReadonlySet<string> = new Set()) {
  const kv = new Map<string, string>();
  const txns: Op[][] = [];
  const ns = {
    getAll: () => ({
      prefix: (p: string) => ({
        exec: async () => ({
          kvs: [...kv]
            .filter(([k]) => k.startsWith(p))
            .map(([k, v]) => ({ key: Buffer.from(k), value: Buffer.from(v) })),
        }),
      }),
    }),
    put: (key: string) => ({ value: (value: string): Op => ({ put: key, value }) }),
    delete: () => ({ key: (key: string): Op => ({ del: key }) }),
    if: () => ({
      // biome-ignore lint/suspicious/noThenProperty: etcd3's transaction builder is called then
      then: (...ops: Op[]) => ({
        commit: async () => {
          const bytes = ops.reduce((s, o) => s + ('put' in o ? o.put.length + o.value.length : o.del.length), 0);
          if (bytes > ETCD_MAX_REQUEST_BYTES || ops.some((o) => 'put' in o && refused.has(o.put))) {
            throw new Error('etcdserver: request is too large');
          }
          txns.push(ops);
          for (const o of ops) {
            if ('put' in o) kv.set(o.put, o.value);
            else kv.delete(o.del);
          }
          return { succeeded: true };
        },
      }),
    }),
  };
  const warnings: object[] = [];
  const log = pino({ level: 'silent' });
  log.warn = ((o: object) => warnings.push(o)) as typeof log.warn;
  const ctx = { ns, log, client: {}, closers: new Set() } as unknown as StoreContext;
  return { ctx, kv, txns, warnings };
}

describe('store history - fitted to a transaction', () => {
  test('a pool of 10,000 members is written within MAX_TXN_BYTES, keeping the earlier tables that fit', () => {
    const value = fittedHistoryValue(historyOf('web', 10_000)) as string;
    expect(Buffer.byteLength(value)).toBeLessThanOrEqual(MAX_TXN_BYTES);
    const kept = decodePoolHistory('history/web', Buffer.from(value));
    expect(kept.earlier.length).toBeGreaterThan(0);
    expect(kept.earlier.length).toBeLessThan(4);
  });

  test('10,000 members in two pools: every record reaches etcd (its default request limit) and is read back', async () => {
    const { ctx, kv } = fakeEtcd();
    const history = new Map([
      ['api', historyOf('api', 10_000)],
      ['web', historyOf('web', 10_000)],
    ]);
    await new HistoryStore(ctx).writeTableHistory(history);
    expect([...kv.keys()].sort()).toEqual([keys.historyPool('api'), keys.historyPool('web')]);
  });

  test('one pool refused by etcd: the other pools are still written (and expired), then the refusal is thrown', async () => {
    const { ctx, kv } = fakeEtcd(new Set([keys.historyPool('big')]));
    kv.set(keys.historyPool('gone'), JSON.stringify(historyOf('gone', 2)));
    const small = (pool: string) => ({ pool, current: membersOf(3), earlier: [] });
    const history = new Map([
      ['api', small('api')],
      ['big', small('big')],
      ['web', small('web')],
    ]);
    await expect(new HistoryStore(ctx).writeTableHistory(history)).rejects.toThrow(/history\/big/);
    expect([...kv.keys()].sort()).toEqual([keys.historyPool('api'), keys.historyPool('web')]);
  });

  test('a pool whose current table alone does not fit is left out and logged historyTooLarge', async () => {
    const { ctx, kv, warnings } = fakeEtcd();
    const long = (n: number): HistoryMember[] =>
      membersOf(n).map((m) => ({ ...m, name: `${m.name}-${'x'.repeat(200)}` }));
    const history = new Map([
      ['huge', { pool: 'huge', current: long(6_000), earlier: [] }],
      ['web', historyOf('web', 10)],
    ]);
    await new HistoryStore(ctx).writeTableHistory(history);
    expect([...kv.keys()]).toEqual([keys.historyPool('web')]);
    expect(warnings).toEqual([
      expect.objectContaining({ event: 'historyTooLarge', pool: 'huge', limit: MAX_TXN_BYTES }),
    ]);
  });
});
