import type { Namespace } from 'etcd3';
import pino from 'pino';
import { afterEach, describe, expect, test } from 'vitest';
import { StoreError } from './errors.js';
import { keys } from './layout.js';
import { EtcdNodeRegistration } from './registration.js';

/** Just what a registration uses of an etcd namespace: a lease, and txns of puts and deletes that can be made to fail. */
class FakeNamespace {
  readonly kv = new Map<string, string>();
  failNext = 0;

  lease() {
    return {
      grant: async () => '1',
      on: () => undefined,
      release: () => undefined,
      revoke: async () => undefined,
      revoked: () => false,
      keepaliveOnce: async () => undefined,
    };
  }

  put(key: string) {
    const op = { key, value: '', lease: () => op };
    return { value: (v: string) => Object.assign(op, { value: v }) };
  }

  delete() {
    return { key: (key: string) => ({ key, delete: true }) };
  }

  if() {
    let ops: { key: string; value?: string; delete?: boolean }[] = [];
    const txn = {
      // biome-ignore lint/suspicious/noThenProperty: etcd3's txn builder is called `then`
      then: (...o: typeof ops) => {
        ops = o;
        return txn;
      },
      commit: async () => {
        if (this.failNext > 0) {
          this.failNext -= 1;
          throw new Error('etcd request timed out');
        }
        for (const op of ops) {
          if (op.delete) this.kv.delete(op.key);
          else this.kv.set(op.key, op.value as string);
        }
      },
    };
    return txn;
  }
}

describe('store registration - health reports', () => {
  let reg: EtcdNodeRegistration | undefined;
  afterEach(async () => {
    await reg?.close();
    reg = undefined;
  });

  test('store registration - a report whose write failed is written by the retry of the same view', async () => {
    const ns = new FakeNamespace();
    reg = await EtcdNodeRegistration.create(
      ns as unknown as Namespace,
      { name: 'lb1' },
      {},
      pino({ level: 'silent' }),
      1_000,
    );
    await reg.reportHealth(new Map([['web/a', 'up']]));
    const view = new Map([
      ['web/a', 'down'],
      ['api/b', 'up'],
    ] as const);
    ns.failNext = 1;
    await expect(reg.reportHealth(view)).rejects.toBeInstanceOf(StoreError);
    await reg.reportHealth(view);
    expect(JSON.parse(ns.kv.get(keys.healthPool('lb1', 'web')) ?? '{}').members).toEqual({ a: 'down' });
    expect(JSON.parse(ns.kv.get(keys.healthPool('lb1', 'api')) ?? '{}').members).toEqual({ b: 'up' });
    // A pool dropped from the view is deleted even when the first delete failed.
    ns.failNext = 1;
    await expect(reg.reportHealth(new Map([['api/b', 'up']]))).rejects.toBeInstanceOf(StoreError);
    await reg.reportHealth(new Map([['api/b', 'up']]));
    expect(ns.kv.has(keys.healthPool('lb1', 'web'))).toBe(false);
  });
});
