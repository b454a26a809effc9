/**
 * A fake etcd3 Namespace for the store's read and watch paths (prefix-cache.ts): range reads over a map and watchers
 * driven by hand. Test code only.
 */
import { EventEmitter } from 'node:events';
import type { Namespace } from 'etcd3';

/** The client's receive limit (connection.ts): a larger range response fails (RESOURCE_EXHAUSTED). */
const MAX_RECEIVE_BYTES = 64 * 1024 * 1024;

/**
 * Just what readPrefix uses of a namespace: range reads (prefix or [start, end)), limit, revision. A response beyond
 * the client's receive limit fails as gRPC's does; every read's revision is recorded.
 */
export function fakeNamespace(kv: Map<string, Buffer>, currentRevision: number) {
  const reads: number[] = [];
  const getAll = () => {
    let start = '';
    let end = '';
    let limit = 0;
    let revision = 0;
    const b = {
      prefix: (p: string) => {
        start = p;
        end = `${p.slice(0, -1)}${String.fromCharCode(p.charCodeAt(p.length - 1) + 1)}`;
        return b;
      },
      inRange: (r: { start: Buffer; end: Buffer }) => {
        start = r.start.toString();
        end = r.end.toString();
        return b;
      },
      limit: (n: number) => {
        limit = n;
        return b;
      },
      revision: (rev: number | string) => {
        revision = Number(rev);
        return b;
      },
      exec: async () => {
        reads.push(revision);
        const all = [...kv].filter(([k]) => k >= start && k < end).sort(([a], [c]) => (a < c ? -1 : 1));
        const page = limit > 0 ? all.slice(0, limit) : all;
        const bytes = page.reduce((n, [k, v]) => n + k.length + v.length, 0);
        if (bytes > MAX_RECEIVE_BYTES) {
          throw new Error(`8 RESOURCE_EXHAUSTED: Received message larger than max (${bytes} vs ${MAX_RECEIVE_BYTES})`);
        }
        return {
          header: { revision: String(currentRevision) },
          more: page.length < all.length,
          kvs: page.map(([k, v]) => ({ key: Buffer.from(k), value: v, create_revision: '2', mod_revision: '3' })),
        };
      },
    };
    return b;
  };
  // Watchers driven by hand (watch.test.ts): the test emits their `data`.
  const watchers: EventEmitter[] = [];
  const watch = () => {
    const b = {
      prefix: () => b,
      key: () => b,
      startRevision: () => b,
      watcher: () => {
        const w = Object.assign(new EventEmitter(), { cancel: async () => undefined });
        watchers.push(w);
        return w;
      },
    };
    return b;
  };
  return { ns: { getAll, watch } as unknown as Namespace, reads, watchers };
}

/** A watch response of one event at `revision`: a put of `value` at `key`, or its delete (value undefined). */
export function watchEvent(revision: number, key: string, value?: string) {
  const kv = {
    key: Buffer.from(key),
    value: Buffer.from(value ?? ''),
    create_revision: '2',
    mod_revision: String(revision),
  };
  return { header: { revision: String(revision) }, events: [{ type: value === undefined ? 'Delete' : 'Put', kv }] };
}
