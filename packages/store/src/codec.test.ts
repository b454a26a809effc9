import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
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
  // The fields the earliest parseFleet knows, pinned from commit 231d1be (config: fleet model, parseFleet; its
  // checkKeys lists in packages/config/src/parse.ts). Every later field (forwarding and guePort 97ad9da, profile
  // 0d3b056, secondChance 101001b, ...) is unknown to it, and it refuses unknown fields, so a fleet that uses none of
  // them must be stored with these keys only or nodes of that build refuse every apply and edit.
  const EARLIEST_COMMIT = '231d1be';
  const EARLIEST_KEYS = {
    fleet: ['hashSeed', 'pools', 'vips'],
    pool: ['name', 'healthCheck', 'members'],
    healthCheck: ['type', 'port', 'path', 'expectStatus', 'payload', 'intervalMs', 'timeoutMs', 'rise', 'fall'],
    member: ['name', 'address', 'port', 'weight', 'state'],
    vip: ['address', 'port', 'protocol', 'pool', 'tableSize', 'hash'],
  };
  // One pool of one member per VIP: TCP and UDP over IPv4, TCP over IPv6, health checks of the earliest types.
  const earliestFleet = () =>
    parseFleet({
      hashSeed: 9,
      pools: [
        { name: 'web', healthCheck: { type: 'http' }, members: [{ address: '198.18.0.1', port: 80 }] },
        { name: 'dns', healthCheck: { type: 'udp' }, members: [{ address: '198.18.0.2', port: 53 }] },
        { name: 'web6', members: [{ address: '2001:db8:1::1', port: 443 }] },
      ],
      vips: [
        { address: '198.51.100.1', port: 80, protocol: 'tcp', pool: 'web' },
        { address: '198.51.100.1', port: 53, protocol: 'udp', pool: 'dns' },
        { address: '2001:db8:2::1', port: 443, protocol: 'tcp', pool: 'web6' },
      ],
    });
  /** Every key of a stored fleet that `keys` does not list, as `path.key`. */
  const unknownKeys = (stored: Record<string, unknown>, keys: typeof EARLIEST_KEYS): string[] => {
    type Raw = Record<string, unknown>;
    const out: string[] = [];
    const check = (o: unknown, allowed: string[], path: string) => {
      for (const k of Object.keys(o as Raw)) if (!allowed.includes(k)) out.push(`${path}.${k}`);
    };
    check(stored, keys.fleet, 'fleet');
    (stored.pools as Raw[]).forEach((pool, i) => {
      check(pool, keys.pool, `pools[${i}]`);
      check(pool.healthCheck, keys.healthCheck, `pools[${i}].healthCheck`);
      for (const [j, m] of (pool.members as Raw[]).entries()) check(m, keys.member, `pools[${i}].members[${j}]`);
    });
    for (const [i, vip] of (stored.vips as Raw[]).entries()) check(vip, keys.vip, `vips[${i}]`);
    return out;
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

  test('rolling upgrade - a fleet using no later feature is stored with the earliest keys only (defaults left out)', () => {
    const fleet = earliestFleet();
    // Readers still see the defaults parseFleet fills in.
    expect(fleet.pools[0]).toMatchObject({ forwarding: 'l2', guePort: 6080, secondChance: { enabled: true } });
    expect(fleet.vips[1]?.profile).toEqual({ idleTimeoutS: 30, onTimeout: 'drop' });
    const { pointer, stored } = storedFleet(fleet);
    expect(unknownKeys(stored, EARLIEST_KEYS)).toEqual([]);
    // Read back, the fleet is the one applied: same settings, same tables, same checksums.
    const decoded = decodeDocument('k', decodePointer('k', Buffer.from(JSON.stringify(pointer))), []);
    expect(decoded).toEqual(fleet);
    expect(checksums(decoded)).toEqual(checksums({ ...fleet, hashSeed: 9 }));
    // A fleet that uses a later feature carries that feature's field (and no other default).
    const tunnelled = storedFleet(minimal()).stored;
    expect(unknownKeys(tunnelled, EARLIEST_KEYS)).toEqual(['pools[1].forwarding', 'pools[2].forwarding']);
  });

  // The earliest parseFleet itself, taken from git history, reads what is stored now. Only where the history is
  // there (a checkout, not a release tarball); the pinned EARLIEST_KEYS test above runs everywhere.
  const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
  const hasHistory = (() => {
    try {
      execFileSync('git', ['cat-file', '-e', `${EARLIEST_COMMIT}^{commit}`], { cwd: repoRoot, stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  })();
  test.skipIf(!hasHistory)(
    `rolling upgrade - the parseFleet of ${EARLIEST_COMMIT} accepts the stored fleet`,
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'l4fleet-earliest-parse-'));
      try {
        const tar = execFileSync('git', ['archive', EARLIEST_COMMIT, 'packages/config/src'], {
          cwd: repoRoot,
          maxBuffer: 64 * 1024 * 1024,
        });
        execFileSync('tar', ['-x', '-C', dir], { input: tar });
        // Its imports: @l4fleet/maglev (aliased to the source by vitest.config.ts) and yaml, from this checkout.
        symlinkSync(join(repoRoot, 'node_modules'), join(dir, 'node_modules'));
        const earliest = (await import(join(dir, 'packages/config/src/parse.ts'))) as { parseFleet: typeof parseFleet };
        const fleet = earliestFleet();
        const { stored } = storedFleet(fleet);
        const read = earliest.parseFleet(stored);
        // It reads the same pools, members and VIPs (without the fields it does not know).
        expect(read.vips.map((v) => `${v.protocol} ${v.address} ${v.port} ${v.pool} ${v.tableSize} ${v.hash}`)).toEqual(
          fleet.vips.map((v) => `${v.protocol} ${v.address} ${v.port} ${v.pool} ${v.tableSize} ${v.hash}`),
        );
        expect(read.pools.map((p) => p.members)).toEqual(fleet.pools.map((p) => p.members));
        expect(read.pools.map((p) => p.healthCheck)).toEqual(fleet.pools.map((p) => p.healthCheck));
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  test('rolling upgrade - a forwarding, guePort, secondChance or profile that is not the default is stored and reads back as applied', () => {
    const fleet = minimal({
      pool: { secondChance: { retainS: 600 }, guePort: 6081 },
      tcp: { profile: { idleTimeoutS: 900 } },
      udp: { profile: { idleTimeoutS: 60 } },
    });
    const { pointer, stored } = storedFleet(fleet);
    const pools = stored.pools as { secondChance?: unknown }[];
    const vips = stored.vips as { profile?: unknown }[];
    expect(pools.map((p) => p.secondChance)).toEqual([undefined, { enabled: true, retainS: 600 }, undefined]);
    expect(stored.pools).toMatchObject([{}, { forwarding: 'gue', guePort: 6081 }, { forwarding: 'ipip' }]);
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
    expect(text).not.toMatch(/forwarding|guePort|secondChance|profile/);
  });
});
