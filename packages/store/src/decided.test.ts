import type { MemberStatus } from '@l4fleet/config';
import { GRPCResourceExhastedError } from 'etcd3';
import pino from 'pino';
import { describe, expect, test } from 'vitest';
import { DecidedStore } from './decided.js';
import { fakeNamespace, watchEvent } from './fake-namespace.test-helper.js';
import { keys } from './layout.js';
import type { StoreContext } from './store-context.js';
import type { DecidedState } from './types.js';

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

/** The decided store over a fake etcd holding `records` (key -> value) at revision 9, for reads and watches. */
function readingStore(records: Record<string, string>) {
  const kv = new Map(Object.entries(records).map(([k, v]) => [k, Buffer.from(v)] as const));
  const { ns, watchers } = fakeNamespace(kv, 9);
  const ctx = { ns, log: pino({ level: 'silent' }), client: {}, closers: new Set() } as unknown as StoreContext;
  return { store: new DecidedStore(ctx), watchers };
}

/** What a state says of its pools: the pools served, those refused with none served, the members decided. */
const pools = (d: DecidedState) => ({
  pools: [...(d.pools ?? [])].sort(),
  refused: [...(d.refusedPools ?? [])].sort(),
  decided: [...d.decided.keys()].sort(),
});

const RECORDS = {
  'decided/web': '{"pool":"web","members":{"a":"draining"}}', // a member state this version cannot decode
  'decided/api': '{"pool":"api","members":{"x":"down"}}',
  'decided/gone': '{"pool":"gone","members":{}}', // a removed pool whose slow start ended: written with no member
  'decided/a/web': '{"pool":"web","members":{}}', // a longer key: an invalid record, of no pool
};

// The agent stands the state file's decisions in for a pool only while its key holds a record refused here
// (agent etcd/decided-fallback.ts): which keys are there, readable or refused, must be in the state, as decisions
// alone do not tell a record with no member, or a key deleted, from a refused one.
describe('store decided - the pools a state holds', () => {
  test('getDecided: readable pools (one with no member among them) and refused ones; a longer key is no pool', async () => {
    const { store } = readingStore(RECORDS);
    expect(pools(await store.getDecided())).toEqual({
      pools: ['api', 'gone'],
      refused: ['web'],
      decided: ['api/x'],
    });
  });

  test('watchDecided: refused until a good record or a delete; one going bad keeps its last good record', async () => {
    const { store, watchers } = readingStore(RECORDS);
    const seen: ReturnType<typeof pools>[] = [];
    const watch = await store.watchDecided({ onUpdate: (d) => void seen.push(pools(d)) });
    const emit = (revision: number, key: string, value?: string) =>
      watchers.at(-1)?.emit('data', watchEvent(revision, key, value));
    emit(10, 'decided/web', '{"pool":"web","members":{}}');
    emit(11, 'decided/web', RECORDS['decided/web']);
    emit(12, 'decided/api');
    emit(13, 'decided/api', '{"pool":"api","members":{"x":"draining"}}');
    await watch.close();
    expect(seen).toEqual([
      { pools: ['api', 'gone'], refused: ['web'], decided: ['api/x'] },
      { pools: ['api', 'gone', 'web'], refused: [], decided: ['api/x'] },
      { pools: ['api', 'gone', 'web'], refused: [], decided: ['api/x'] }, // web's last good (empty) record served
      { pools: ['gone', 'web'], refused: [], decided: [] },
      { pools: ['gone', 'web'], refused: ['api'], decided: [] },
    ]);
  });
});
