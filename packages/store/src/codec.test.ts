import { parseFleet } from '@l4fleet/config';
import { describe, expect, test } from 'vitest';
import { decodeDocument, decodePointer, encodeDocument } from './codec.js';
import { CHUNK_BYTES } from './layout.js';

const big = parseFleet({
  hashSeed: 3,
  pools: Array.from({ length: 20 }, (_, p) => ({
    name: `p${p}`,
    members: Array.from({ length: 500 }, (_, i) => ({ address: `198.18.${2 * p + (i >> 8)}.${i & 255}`, port: 80 })),
  })),
});

describe('store codec', () => {
  test('small documents are plain JSON in one chunk; large ones gzip and chunk', () => {
    const small = encodeDocument({ pools: [], vips: [], hashSeed: 1 }, 'g1', new Date(0));
    expect(small.pointer).toMatchObject({ encoding: 'inline', chunks: 0 });
    expect(decodeDocument('k', small.pointer, [])).toEqual({ pools: [], vips: [], hashSeed: 1 });
    const large = encodeDocument({ ...big, hashSeed: 3 }, 'g2', new Date(0));
    expect(large.pointer.encoding).toBe('gzip');
    for (const c of large.chunks) expect(c.length).toBeLessThanOrEqual(CHUNK_BYTES);
    expect(decodeDocument('k', large.pointer, large.chunks)).toEqual(big);
  });

  test('a missing chunk or a changed byte is INVALID_RECORD, never a partial fleet', () => {
    const doc = encodeDocument({ ...big, hashSeed: 3 }, 'g3', new Date(0));
    const tampered = doc.chunks.map((c) => Buffer.from(c));
    const first = tampered[0] as Buffer;
    first[10] = (first[10] as number) ^ 1;
    expect(() => decodeDocument('k', doc.pointer, tampered)).toThrow(/sha256/);
    expect(() => decodeDocument('k', { ...doc.pointer, chunks: doc.pointer.chunks + 1 }, doc.chunks)).toThrow(/chunks/);
  });

  test('an inline document edited by hand: a same-size edit is caught by its sha256, a growing one by its bytes', () => {
    const fleet = parseFleet({ hashSeed: 7, pools: [{ name: 'web', members: [{ address: '198.18.0.1', port: 80 }] }] });
    const { pointer } = encodeDocument({ ...fleet, hashSeed: 7 }, 'g5', new Date(0));
    expect(pointer.encoding).toBe('inline');
    // Through JSON, as a reader gets it from etcd; port 80 -> 81 keeps the length, so only the hash can differ.
    type Member = { address: string; port: number };
    const edited = JSON.parse(JSON.stringify(pointer)) as { document: { fleet: { pools: { members: Member[] }[] } } };
    const members = edited.document.fleet.pools[0]?.members as Member[];
    expect(members[0]?.port).toBe(80);
    (members[0] as Member).port = 81;
    expect(() => decodePointer('k', Buffer.from(JSON.stringify(edited)))).toThrow(
      /^k: sha256 "[0-9a-f]+\.\.\. is not the inline document's sha256 [0-9a-f]{64}$/,
    );
    members.push({ address: '198.18.0.99', port: 80 });
    expect(() => decodePointer('k', Buffer.from(JSON.stringify(edited)))).toThrow(
      /^k: bytes \d+ is not the inline document's size \d+$/,
    );
  });

  test('pointer validation names the key and the field', () => {
    expect(() => decodePointer('v1/desired/current', Buffer.from('{"schema":1}'))).toThrow(
      /v1\/desired\/current: generation undefined is not a generation id/,
    );
  });

  test('appliedBy: kept as given without control characters, at most 200; absent when not given; a bad one is refused', () => {
    const encode = (by?: string) => encodeDocument({ pools: [], vips: [], hashSeed: 1 }, 'g4', new Date(0), by).pointer;
    expect(encode('alice@ops1 (l4fleet apply)').appliedBy).toBe('alice@ops1 (l4fleet apply)');
    expect(encode(' bob\n\u0007@x ').appliedBy).toBe('bob  @x');
    expect(encode('x'.repeat(300)).appliedBy).toHaveLength(200);
    expect('appliedBy' in encode()).toBe(false);
    expect('appliedBy' in encode(' \n ')).toBe(false);
    const decoded = decodePointer('k', Buffer.from(JSON.stringify(encode('carol'))));
    expect(decoded.appliedBy).toBe('carol');
    for (const bad of [7, '', 'a\u0001b', 'y'.repeat(201), ' padded']) {
      const p = { ...encode('z'), appliedBy: bad };
      expect(() => decodePointer('k', Buffer.from(JSON.stringify(p))), String(bad)).toThrow(
        /k: appliedBy .* is not a writer's name/,
      );
    }
  });
});
