import type { PoolHistory } from '@l4fleet/config';
import { describe, expect, test } from 'vitest';
import { StoreError } from './errors.js';
import { fittedHistoryValue } from './history.js';
import { decodePoolHistory, encodePoolHistory } from './history-record.js';
import { MAX_TXN_BYTES } from './layout.js';
import { MAX_RECORD_BYTES } from './limits.js';
import { MemoryFleetStore } from './memory-store.js';

const KEY = 'history/web';
const good: PoolHistory = {
  pool: 'web',
  current: [
    { name: 'a', address: '198.18.0.1', port: 80, weight: 1 },
    { name: 'b', address: '2001:db8::2', port: 80, weight: 0 },
  ],
  earlier: [{ untilMs: 1_700_000_000_000, members: [{ name: 'a', address: '198.18.0.1', port: 80, weight: 1 }] }],
};
const raw = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v));
const rows = JSON.parse(encodePoolHistory(good)) as { current: unknown[][]; earlier: object[] };

describe('store history - the record', () => {
  test('encodes and decodes to the same history', () => {
    expect(decodePoolHistory(KEY, raw(encodePoolHistory(good)))).toEqual(good);
  });

  test.each([
    ['not JSON', '{"pool":', 'history/web: value: "{\\"pool\\":" is not JSON'],
    ['another pool', { ...rows, pool: 'api' }, 'history/web: pool: "api" is not the key\'s pool "web"'],
    ['current not a list', { ...rows, current: 5 }, 'history/web: current: 5 is not a list of members'],
    ['a short row', { ...rows, current: [['a', '198.18.0.1', 80]] }, 'current[0]: ["a","198.18.0.1",80] is not [name'],
    [
      'unsorted names',
      { ...rows, current: [rows.current[1], rows.current[0]] },
      'current[1].name: "a" is not after "b"',
    ],
    [
      'duplicate names',
      { ...rows, current: [rows.current[0], rows.current[0]] },
      'current[1].name: "a" is not after "a"',
    ],
    ['a bad address', { ...rows, current: [['a', '10.0.0.300', 80, 1]] }, 'current[0].address: "10.0.0.300" is not'],
    [
      'a non-canonical address',
      { ...rows, current: [['a', '2001:DB8::2', 80, 1]] },
      'current[0].address: "2001:DB8::2"',
    ],
    ['port 0', { ...rows, current: [['a', '198.18.0.1', 0, 1]] }, 'current[0].port: 0 is not a port (1-65535)'],
    [
      'weight NaN text',
      { ...rows, current: [['a', '198.18.0.1', 80, 'NaN']] },
      'current[0].weight: "NaN" is not a weight',
    ],
    ['negative weight', { ...rows, current: [['a', '198.18.0.1', 80, -1]] }, 'current[0].weight: -1 is not a weight'],
    ['too many tables', { ...rows, earlier: Array(5).fill(rows.earlier[0]) }, 'earlier: [{'],
    [
      'a bad time',
      { ...rows, earlier: [{ untilMs: 'soon', members: [] }] },
      'earlier[0].untilMs: "soon" is not a time',
    ],
    ['earlier members', { ...rows, earlier: [{ untilMs: 1, members: {} }] }, 'earlier[0].members: {} is not a list'],
  ])('%s is refused naming the key, the field and the value', (_what, value, message) => {
    let err: unknown;
    try {
      decodePoolHistory(KEY, raw(value));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(StoreError);
    expect((err as StoreError).code).toBe('INVALID_RECORD');
    expect((err as StoreError).key).toBe(KEY);
    expect((err as Error).message).toContain(message);
  });

  // shown() stringified the whole value: a RangeError escaped as no StoreError, so the rejection was not signalled.
  test.each([
    ['a row', 'current', 'current[0]: [[['],
    ['an earlier table', 'earlier', 'earlier[0]: [[['],
  ])('%s nested 20,000 deep is refused as INVALID_RECORD naming the key and the field', (_what, field, message) => {
    const deep = `${'['.repeat(20_000)}${']'.repeat(20_000)}`;
    const json = `{"pool":"web","current":[],"earlier":[],"${field}":[${deep}]}`;
    let err: unknown;
    try {
      decodePoolHistory(KEY, raw(json));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(StoreError);
    expect((err as StoreError).code).toBe('INVALID_RECORD');
    expect((err as StoreError).key).toBe(KEY);
    expect((err as Error).message).toContain(`${KEY}: ${message}`);
  });

  test('a record over MAX_RECORD_BYTES is refused before parsing', () => {
    expect(() => decodePoolHistory(KEY, Buffer.alloc(MAX_RECORD_BYTES + 1, 32))).toThrow(
      `history/web: value: ${MAX_RECORD_BYTES + 1} bytes is more than the limit`,
    );
  });

  test('the writer drops the oldest earlier tables until the record fits, and nothing when the current cannot', () => {
    const big = (n: number, tag: string) =>
      Array.from({ length: n }, (_v, i) => ({
        name: `${tag}-${String(i).padStart(6, '0')}-${'x'.repeat(60)}`,
        address: '198.18.0.1',
        port: 80,
        weight: 1,
      }));
    const members = big(5_000, 'm'); // ~465 KB a table: the current and one earlier fit MAX_TXN_BYTES, not two
    const h: PoolHistory = {
      pool: 'web',
      current: members,
      earlier: [
        { untilMs: 2, members },
        { untilMs: 1, members },
      ],
    };
    const value = fittedHistoryValue(h);
    expect(value).toBeDefined();
    expect(Buffer.byteLength(value as string)).toBeLessThanOrEqual(MAX_TXN_BYTES);
    expect(decodePoolHistory(KEY, raw(value)).earlier.map((t) => t.untilMs)).toEqual([2]);
    expect(fittedHistoryValue({ pool: 'web', current: big(100_000, 'm'), earlier: [] })).toBeUndefined();
  });

  test('memory store: write, read back, watch; pools not given are removed', async () => {
    const store = new MemoryFleetStore();
    const seen: number[] = [];
    await store.watchTableHistory({ onUpdate: (s) => seen.push(s.history.size) });
    await store.writeTableHistory(new Map([['web', good]]));
    expect((await store.getTableHistory()).history.get('web')).toEqual(good);
    await store.writeTableHistory(new Map());
    expect(seen).toEqual([0, 1, 0]);
    await store.close();
  });
});
