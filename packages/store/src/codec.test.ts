import { gunzipSync } from 'node:zlib';
import { buildVipTable, type Fleet, parseFleet } from '@l4fleet/config';
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
  // The keys every node reads since the first stored document (schema 1), before profile and secondChance came: a node
  // of an earlier version refuses any other key, so a fleet that uses no new feature must be stored with these only.
  const V1_KEYS = {
    fleet: ['hashSeed', 'pools', 'vips'],
    pool: ['name', 'healthCheck', 'members', 'forwarding', 'guePort'],
    healthCheck: ['type', 'port', 'path', 'expectStatus', 'payload', 'intervalMs', 'timeoutMs', 'rise', 'fall'],
    member: ['name', 'address', 'port', 'weight', 'state'],
    vip: ['address', 'port', 'protocol', 'pool', 'tableSize', 'hash'],
  };
  const minimal = (extra: { pool?: object; tcp?: object; udp?: object } = {}) =>
    parseFleet({
      hashSeed: 9,
      pools: [
        { name: 'plain', members: [{ address: '198.18.0.1', port: 80 }] },
        {
          name: 'tunnel',
          forwarding: 'gue',
          healthCheck: { type: 'http' },
          members: [{ address: '198.18.0.2', port: 80 }],
          ...extra.pool,
        },
        {
          name: 'dns',
          forwarding: 'ipip',
          healthCheck: { type: 'udp' },
          members: [{ address: '198.18.0.3', port: 53 }],
        },
      ],
      vips: [
        { address: '198.51.100.1', port: 80, protocol: 'tcp', pool: 'plain' },
        { address: '198.51.100.2', port: 80, protocol: 'tcp', pool: 'tunnel', ...extra.tcp },
        { address: '198.51.100.3', port: 53, protocol: 'udp', pool: 'dns', ...extra.udp },
      ],
    });
  const storedFleet = (fleet: Fleet) => {
    const { pointer } = encodeDocument({ ...fleet, hashSeed: 9 }, 'g6', new Date(0));
    // Through JSON, as a node of any version reads it from etcd.
    const read = JSON.parse(JSON.stringify(pointer)) as { document: { fleet: Record<string, unknown> } };
    return { pointer, stored: read.document.fleet };
  };
  const checksums = (fleet: Fleet) => fleet.vips.map((v) => buildVipTable(fleet, v, new Map()).checksum);

  test('rolling upgrade - a fleet using no new feature is stored with the schema 1 keys only (defaults left out)', () => {
    const fleet = minimal();
    expect(fleet.pools[1]?.secondChance).toEqual({ enabled: true, retainS: 3600 }); // readers still see them
    expect(fleet.vips[2]?.profile).toEqual({ idleTimeoutS: 30, onTimeout: 'drop' });
    const { pointer, stored } = storedFleet(fleet);
    type Raw = Record<string, unknown>;
    const keys = (o: unknown) => Object.keys(o as Raw);
    expect(keys(stored)).toEqual(expect.arrayContaining(['pools', 'vips']));
    for (const k of keys(stored)) expect(V1_KEYS.fleet, 'fleet').toContain(k);
    for (const pool of stored.pools as Raw[]) {
      for (const k of keys(pool)) expect(V1_KEYS.pool, `pool ${pool.name}`).toContain(k);
      for (const k of keys(pool.healthCheck)) expect(V1_KEYS.healthCheck, `pool ${pool.name} check`).toContain(k);
      for (const m of pool.members as Raw[]) for (const k of keys(m)) expect(V1_KEYS.member).toContain(k);
    }
    for (const vip of stored.vips as Raw[])
      for (const k of keys(vip)) expect(V1_KEYS.vip, `${vip.address}`).toContain(k);
    // Read back, the fleet is the one applied: same settings, same tables, same checksums.
    const decoded = decodeDocument('k', decodePointer('k', Buffer.from(JSON.stringify(pointer))), []);
    expect(decoded).toEqual(fleet);
    expect(checksums(decoded)).toEqual(checksums({ ...fleet, hashSeed: 9 }));
  });

  test('rolling upgrade - a secondChance or profile that is not the default is stored and reads back as applied', () => {
    const fleet = minimal({
      pool: { secondChance: { retainS: 600 } },
      tcp: { profile: { idleTimeoutS: 900 } },
      udp: { profile: { idleTimeoutS: 60 } },
    });
    const { pointer, stored } = storedFleet(fleet);
    const pools = stored.pools as { secondChance?: unknown }[];
    const vips = stored.vips as { profile?: unknown }[];
    expect(pools.map((p) => p.secondChance)).toEqual([undefined, { enabled: true, retainS: 600 }, undefined]);
    expect(vips.map((v) => v.profile)).toEqual([
      undefined,
      { idleTimeoutS: 900, tcpHandshakeTimeoutS: 10, tcpCloseTimeoutS: 10, onTimeout: 'drop' },
      { idleTimeoutS: 60, onTimeout: 'drop' },
    ]);
    const decoded = decodeDocument('k', decodePointer('k', Buffer.from(JSON.stringify(pointer))), []);
    expect(decoded).toEqual(fleet);
    expect(checksums(decoded)).toEqual(checksums({ ...fleet, hashSeed: 9 }));
    // A large (chunked) document leaves them out as well and reads back the same.
    const large = encodeDocument({ ...big, hashSeed: 3 }, 'g7', new Date(0));
    expect(large.pointer.encoding).not.toBe('inline');
    const text = gunzipSync(Buffer.concat(large.chunks)).toString('utf8');
    expect(text).not.toMatch(/secondChance|profile/);
  });
});
