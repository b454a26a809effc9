import { parseFleet } from '@l4fleet/config';
import type { Namespace } from 'etcd3';
import pino from 'pino';
import { describe, expect, test } from 'vitest';
import { encodeDocument } from './codec.js';
import { DesiredStore } from './desired.js';
import type { StoreContext } from './store-context.js';

const fleet = {
  ...parseFleet({ pools: [{ name: 'web', members: [{ address: '198.18.0.1', port: 80 }] }] }),
  hashSeed: 1,
};
const pointerOf = (generation: string) =>
  Buffer.from(JSON.stringify(encodeDocument(fleet, generation, new Date(0)).pointer));

/**
 * Just what apply() uses of an etcd namespace: the pointer read, chunk puts, and the guarded switch, which another
 * writer wins (`rival`: the pointer it leaves) just before this one is evaluated.
 */
class RacedNamespace {
  pointer: { value: Buffer; modRevision: number };
  constructor(
    start: number,
    private readonly rival: { value: Buffer; modRevision: number },
  ) {
    this.pointer = { value: pointerOf('g1'), modRevision: start };
  }

  get(_key: string) {
    const b = {
      revision: () => b,
      exec: async () => ({
        header: { revision: String(this.pointer.modRevision) },
        kvs: [{ value: this.pointer.value, mod_revision: String(this.pointer.modRevision) }],
      }),
    };
    return b;
  }

  put(_key: string) {
    const b = { value: () => b, exec: async () => ({}) };
    return b;
  }

  delete() {
    const b = { range: () => b, prefix: () => b, exec: async () => ({}) };
    return b;
  }

  if(_key: string, _target: string, _op: string, expect: number) {
    const txn = {
      // biome-ignore lint/suspicious/noThenProperty: etcd3's ComparatorBuilder names its success branch then()
      then: () => txn,
      commit: async () => {
        this.pointer = this.rival; // the rival's switch lands just before this one
        return {
          succeeded: this.pointer.modRevision === expect,
          header: { revision: String(this.pointer.modRevision) },
        };
      },
    };
    return txn;
  }
}

describe('store desired - apply', () => {
  test('store desired - a switch that lost the race names the revision it expected and the one it lost to', async () => {
    const ns = new RacedNamespace(2, { value: pointerOf('rival'), modRevision: 3 });
    const ctx = {
      ns: ns as unknown as Namespace,
      log: pino({ level: 'silent' }),
      closers: new Set(),
    } as unknown as StoreContext;
    const err = await new DesiredStore(ctx).apply(fleet).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 'CONFLICT' });
    expect((err as Error).message).toContain('changed since revision 2 (now 3)');
  });
});
