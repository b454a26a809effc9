import { describe, expect, test } from 'vitest';
import { txnBatches } from './fenced-write.js';
import { MAX_TXN_BYTES, MAX_TXN_OPS } from './layout.js';

describe('txnBatches', () => {
  test('at most MAX_TXN_OPS ops per transaction, order kept', () => {
    const ops = Array.from({ length: MAX_TXN_OPS * 2 + 1 }, (_v, i) => ({ key: `k${i}`, value: 'v' }));
    const batches = txnBatches(ops);
    expect(batches.map((b) => b.length)).toEqual([MAX_TXN_OPS, MAX_TXN_OPS, 1]);
    expect(batches.flat()).toEqual(ops);
  });

  test('values beyond MAX_TXN_BYTES start a new transaction; one op larger than the bound goes alone', () => {
    const half = 'x'.repeat(MAX_TXN_BYTES / 2);
    const big = 'y'.repeat(MAX_TXN_BYTES + 1);
    const ops = [{ key: 'a', value: half }, { key: 'b', value: half }, { key: 'c', value: big }, { key: 'd' }];
    expect(txnBatches(ops).map((b) => b.map((o) => o.key))).toEqual([['a'], ['b'], ['c'], ['d']]);
  });

  test('deletes cost no bytes', () => {
    expect(txnBatches([{ key: 'a' }, { key: 'b' }]).length).toBe(1);
  });
});
