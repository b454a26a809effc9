import type { MemberStatus } from '@l4fleet/config';
import { GRPCResourceExhastedError } from 'etcd3';
import pino from 'pino';
import { describe, expect, test } from 'vitest';
import { DecidedStore } from './decided.js';
import { keys } from './layout.js';
import type { StoreContext } from './store-context.js';

/** etcd's default --max-request-bytes: 1.5 MiB. */
const ETCD_MAX_REQUEST_BYTES = 1.5 * 1024 * 1024;

type Op = { put: string; value: string } | { del: string };

/** Just enough of etcd3's Namespace for writeFencedPrefix: a txn beyond etcd's default request limit is refused. */
function fakeEtcd(fail?: () => Error) {
  const kv = new Map<string, string>();
  const ns = {
    getAll: () => ({ prefix: () => ({ exec: async () => ({ kvs: [] }) }) }),
    put: (key: string) => ({ value: (value: string): Op => ({ put: key, value }) }),
    delete: () => ({ key: (key: string): Op => ({ del: key }) }),
    if: () => ({
      // biome-ignore lint/suspicious/noThenProperty: etcd3's transaction builder is called then
      then: (...ops: Op[]) => ({
        commit: async () => {
          if (fail) throw fail();
          const bytes = ops.reduce((s, o) => s + ('put' in o ? o.put.length + o.value.length : o.del.length), 0);
          if (bytes > ETCD_MAX_REQUEST_BYTES) throw new Error('etcdserver: request is too large');
          for (const o of ops) if ('put' in o) kv.set(o.put, o.value);
          return { succeeded: true };
        },
      }),
    }),
  };
  const ctx = { ns, log: pino({ level: 'silent' }), client: {}, closers: new Set() } as unknown as StoreContext;
  return { ctx, kv };
}

/** `pool/address:80` -> up for `n` members (default member names, as the config names them). */
function poolOf(pool: string, n: number): [string, MemberStatus][] {
  return Array.from({ length: n }, (_v, k) => [`${pool}/10.${k >> 16}.${(k >> 8) & 255}.${k & 255}:80`, 'up']);
}

describe('store decided - record size', () => {
  test('a pool of 100,000 members is refused naming decided/<pool> and its size; the other pools are written', async () => {
    const { ctx, kv } = fakeEtcd();
    const decided = new Map([...poolOf('api', 10), ...poolOf('big', 100_000), ...poolOf('web', 10)]);
    const err = await new DecidedStore(ctx).writeDecided(decided).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'TOO_LARGE', key: keys.decidedPool('big') });
    expect((err as Error).message).toMatch(/decided\/big: [\d,]+ bytes, above the 1,048,576 bytes/);
    expect([...kv.keys()].sort()).toEqual([keys.decidedPool('api'), keys.decidedPool('web')]);
  });
});

describe('store decided - etcd refusing every write', () => {
  test("etcd's NOSPACE alarm fails the write as NO_SPACE; no pool is taken as too large, none as written", async () => {
    const { ctx, kv } = fakeEtcd(() => new GRPCResourceExhastedError('etcdserver: mvcc: database space exceeded'));
    const decided = new Map<string, MemberStatus>([
      ['web/a', 'down'],
      ['db/b', 'up'],
    ]);
    const err = await new DecidedStore(ctx).writeDecided(decided).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'NO_SPACE' });
    expect((err as Error).message).toMatch(/NOSPACE alarm/);
    expect((err as Error).message).not.toMatch(/other records written/);
    expect(kv.size).toBe(0);
  });

  test('every changed pool too large: refused, and the message does not say other records were written', async () => {
    const { ctx, kv } = fakeEtcd();
    const decided = new Map(poolOf('big', 100_000));
    const err = await new DecidedStore(ctx).writeDecided(decided).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'TOO_LARGE', key: keys.decidedPool('big') });
    expect((err as Error).message).not.toMatch(/other records written/);
    expect(kv.size).toBe(0);
  });
});
