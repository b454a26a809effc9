import { EventEmitter } from 'node:events';
import { parseFleet } from '@l4fleet/config';
import type { Namespace } from 'etcd3';
import pino from 'pino';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { encodeDocument } from './codec.js';
import { DesiredStore } from './desired.js';
import type { StoreError } from './errors.js';
import { keys } from './layout.js';
import type { StoreContext } from './store-context.js';
import type { DesiredState, Watch } from './types.js';

/** Just what watchDesired uses of an etcd namespace: get of the pointer, and watchers the test drives. */
class FakeNamespace {
  pointer: { value: Buffer; modRevision: number } | undefined;
  revision = 10;
  readonly watchers: (EventEmitter & { cancel(): Promise<void> })[] = [];

  get(_key: string) {
    const exec = async () => ({
      header: { revision: String(this.revision) },
      kvs: this.pointer ? [{ value: this.pointer.value, mod_revision: String(this.pointer.modRevision) }] : [],
    });
    const b = { revision: () => b, exec };
    return b;
  }

  watch() {
    const b = {
      key: () => b,
      startRevision: () => b,
      watcher: () => {
        const w = Object.assign(new EventEmitter(), { cancel: async () => undefined });
        this.watchers.push(w);
        return w;
      },
    };
    return b;
  }
}

const fleet = {
  ...parseFleet({ pools: [{ name: 'web', members: [{ address: '198.18.0.1', port: 80 }] }] }),
  hashSeed: 1,
};

describe('store desired - resync', () => {
  let watch: Watch | undefined;
  afterEach(async () => {
    await watch?.close();
    watch = undefined;
  });

  test('store desired - a pointer deleted by hand and found absent on a resync keeps the last good fleet', async () => {
    const ns = new FakeNamespace();
    ns.pointer = {
      value: Buffer.from(JSON.stringify(encodeDocument(fleet, 'g1', new Date(0)).pointer)),
      modRevision: 5,
    };
    const ctx = {
      ns: ns as unknown as Namespace,
      log: pino({ level: 'silent' }),
      closers: new Set(),
    } as unknown as StoreContext;
    const updates: DesiredState[] = [];
    const errors: StoreError[] = [];
    watch = await new DesiredStore(ctx).watchDesired({
      onUpdate: (s) => updates.push(s),
      onError: (e) => errors.push(e),
    });
    expect(updates.map((u) => u.revision)).toEqual([5]);
    // Deleted by hand while the watch was away; its resume revision is compacted: the watch re-reads everything.
    ns.pointer = undefined;
    ns.revision = 20;
    ns.watchers[0]?.emit('error', new Error('etcdserver: mvcc: required revision has been compacted'));
    await vi.waitFor(() => expect(ns.watchers).toHaveLength(2));
    expect(updates.map((u) => u.revision)).toEqual([5]);
    const invalid = errors.filter((e) => e.code === 'INVALID_RECORD');
    expect(invalid).toHaveLength(1);
    expect(invalid[0]?.key).toBe(keys.pointer);
    expect(invalid[0]?.message).toContain(`${keys.pointer}: `);
  });
});
