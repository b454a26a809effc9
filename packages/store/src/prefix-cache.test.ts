import type { Namespace } from 'etcd3';
import { describe, expect, test } from 'vitest';
import { readPrefix } from './prefix-cache.js';

/** The client's receive limit (connection.ts): a larger range response fails (RESOURCE_EXHAUSTED). */
const MAX_RECEIVE_BYTES = 64 * 1024 * 1024;

/**
 * Just what readPrefix uses of a namespace: range reads (prefix or [start, end)), limit, revision. A response beyond
 * the client's receive limit fails as gRPC's does; every read's revision is recorded.
 */
function fakeNamespace(kv: Map<string, Buffer>, currentRevision: number) {
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
  return { ns: { getAll } as unknown as Namespace, reads };
}

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
