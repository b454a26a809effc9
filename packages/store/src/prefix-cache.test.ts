import type { Logger } from 'pino';
import { describe, expect, test } from 'vitest';
import { decodeDecided } from './decided.js';
import { StoreError } from './errors.js';
import { fakeNamespace, watchEvent } from './fake-namespace.test-helper.js';
import { type OnInvalid, PrefixCache, readPrefix } from './prefix-cache.js';

describe('store prefix cache - read', () => {
  test('a prefix larger than one response (100 records of 1 MiB) is read whole in pages, all at one revision', async () => {
    const mib = Buffer.alloc(1024 * 1024, 'x'); // one buffer shared by every key: no 100 MiB allocated
    const kv = new Map<string, Buffer>();
    for (let i = 0; i < 100; i++) kv.set(`health/lb${String(i).padStart(3, '0')}/web`, mib);
    kv.set('healthz', Buffer.from('not under the prefix'));
    const { ns, reads } = fakeNamespace(kv, 77);
    const errors: Error[] = [];
    const { entries, revision } = await readPrefix(
      ns,
      'health/',
      (_k, v) => v.length,
      (e) => errors.push(e),
    );
    expect(errors).toEqual([]);
    expect(entries.size).toBe(100);
    expect(revision).toBe(77);
    expect(reads.length).toBeGreaterThan(1);
    expect(reads.slice(1).every((r) => r === 77)).toBe(true);
  });
});

/** JSON text of a list nested `depth` deep: JSON.parse reads it, JSON.stringify of it overflows the stack. */
const nested = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`;
const deepDecided = Buffer.from(`{"pool":"web","members":{"a":${nested(20_000)}}}`);
const quiet = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

describe('store prefix cache - a record no decoder can show', () => {
  // A RangeError out of a decoder became INTERNAL with no key: the agent did not count the record as rejected, and
  // a refused decided/<pool> was not filled from the state file (docs/design/0002).
  test('decided/web nested 20,000 deep: INVALID_RECORD with key decided/web, the other pools read', async () => {
    const kv = new Map([
      ['decided/web', deepDecided],
      ['decided/api', Buffer.from('{"pool":"api","members":{"a":"up"}}')],
    ]);
    const { ns } = fakeNamespace(kv, 9);
    const errors: StoreError[] = [];
    const { entries } = await readPrefix(ns, 'decided/', decodeDecided, (e) => errors.push(e));
    expect([...entries.keys()]).toEqual(['decided/api']);
    expect(errors.map((e) => [e.code, e.key])).toEqual([['INVALID_RECORD', 'decided/web']]);
  });

  test.each([
    ['a RangeError', new RangeError('Maximum call stack size exceeded'), 'nested too deep to check'],
    ['a TypeError', new TypeError('x is not a function'), 'cannot be checked'],
  ])('a decoder throwing %s: INVALID_RECORD naming the key, read and watched', async (_what, thrown, why) => {
    const kv = new Map([['decided/web', Buffer.from('{}')]]);
    const { ns, watchers } = fakeNamespace(kv, 9);
    const decode = () => {
      throw thrown;
    };
    const errors: StoreError[] = [];
    await readPrefix(ns, 'decided/', decode, (e) => errors.push(e));
    const cache = new PrefixCache(
      ns,
      'decided/',
      { decode, onChange: () => undefined, onError: (e) => errors.push(e) },
      'keep-last-good',
      quiet as unknown as Logger,
    );
    await cache.start();
    const put = { type: 'Put', kv: { key: Buffer.from('decided/web'), value: Buffer.from('{}'), mod_revision: '10' } };
    watchers
      .at(-1)
      ?.emit('data', { header: { revision: '10' }, events: [{ ...put, kv: { ...put.kv, create_revision: '2' } }] });
    await cache.close();
    expect(errors.length).toBe(3); // readPrefix, the cache's load, the watched put
    for (const e of errors) {
      expect(e).toBeInstanceOf(StoreError);
      expect([e.code, e.key]).toEqual(['INVALID_RECORD', 'decided/web']);
      expect(e.message).toContain(`decided/web: value: ${why} (${thrown.name}: ${thrown.message})`);
      expect(e.cause).toBe(thrown);
    }
  });
});

const good = (pool: string) => `{"pool":"${pool}","members":{"a":"up"}}`;
const BAD = '{"pool":"web","members":{"a":"draining"}}'; // a member state this version cannot decode

describe('store prefix cache - refused keys', () => {
  test('readPrefix: the keys whose value was refused, beside the good entries', async () => {
    const kv = new Map([
      ['decided/web', Buffer.from(BAD)],
      ['decided/api', Buffer.from(good('api'))],
    ]);
    const { ns } = fakeNamespace(kv, 9);
    const { entries, refused } = await readPrefix(ns, 'decided/', decodeDecided, () => undefined);
    expect([...entries.keys()]).toEqual(['decided/api']);
    expect([...refused]).toEqual(['decided/web']);
  });

  // A decided/<pool> refused on the first read is filled from the agent's state file only while it stays refused:
  // a good value or a delete of the key must show, or the file's decisions would outlive the record on one node.
  test.each(['keep-last-good', 'skip'] as const)(
    '%s: a key is refused from a bad value until a good value or its delete',
    async (onInvalid: OnInvalid) => {
      const kv = new Map([
        ['decided/web', Buffer.from(BAD)],
        ['decided/api', Buffer.from(good('api'))],
      ]);
      const { ns, watchers } = fakeNamespace(kv, 9);
      const seen: { keys: string[]; refused: string[]; revision: number }[] = [];
      const cache = new PrefixCache(
        ns,
        'decided/',
        {
          decode: decodeDecided,
          onChange: (snapshot, revision, refused) =>
            seen.push({ keys: [...snapshot.keys()].sort(), refused: [...refused], revision }),
          onError: () => undefined,
        },
        onInvalid,
        quiet as unknown as Logger,
      );
      await cache.start();
      const emit = (revision: number, key: string, value?: string) =>
        watchers.at(-1)?.emit('data', watchEvent(revision, key, value));
      emit(10, 'decided/web', good('web'));
      emit(11, 'decided/web', BAD);
      emit(12, 'decided/web');
      emit(13, 'decided/web', BAD);
      emit(14, 'decided/web');
      await cache.close();
      const kept = onInvalid === 'keep-last-good' ? ['decided/api', 'decided/web'] : ['decided/api'];
      expect(seen).toEqual([
        { keys: ['decided/api'], refused: ['decided/web'], revision: 9 },
        { keys: ['decided/api', 'decided/web'], refused: [], revision: 10 },
        { keys: kept, refused: ['decided/web'], revision: 11 }, // a running watch: the last good value, if kept
        { keys: ['decided/api'], refused: [], revision: 12 },
        { keys: ['decided/api'], refused: ['decided/web'], revision: 13 },
        { keys: ['decided/api'], refused: [], revision: 14 },
      ]);
    },
  );
});
