import { readFileSync } from 'node:fs';
import { MAX_TOTAL_SOURCE_RANGES, type SourcePrefix } from '@l4fleet/config';
import { buildTable } from '@l4fleet/maglev';
import { describe, expect, test } from 'vitest';
import type { DataPlaneError } from '../errors.js';
import type { VipTable } from '../types.js';
import { type NormalizedVip, validateDesired } from '../validate.js';
import {
  CONFIG_BYTES,
  decodeDump,
  decodeVip,
  encodeSourceKey,
  encodeVip,
  encodeVipKey,
  type KernelRanges,
  MapId,
  rangeKey,
  SOURCE_KEY_BYTES,
  STAT,
  VIP_SOURCE_RANGES,
} from './codec.js';
import { Op, type Request } from './loader.js';
import { emptyState, type KernelState, planApply } from './plan.js';
import { MAX_SOURCE_ENTRIES, planRanges } from './source-ranges.js';

const table = (sourceRanges?: readonly string[], address = '198.51.100.7', port = 80): VipTable => {
  const v6 = address.includes(':');
  const bs = [0, 1, 2].map((i) => ({
    name: `b${i}`,
    address: v6 ? `2001:db8:1::${i + 1}` : `198.18.0.${i + 1}`,
    port,
  }));
  return {
    vip: { address, port, protocol: 'tcp' },
    hash: '5-tuple',
    seed: 9,
    backends: bs,
    slots: buildTable(bs, 251),
    ...(sourceRanges ? { sourceRanges } : {}),
  };
};
const norm = (ts: VipTable[]) => validateDesired(ts, { requireSamePort: true });
const plan = (state: KernelState, ts: VipTable[]) => planApply(state, norm(ts), { src4: 'c6124802' }, 0);
const hex = (b: Buffer): string => b.toString('hex');
/** The trie keys an OP_UPDATE / OP_DELETE of l4f_src_ranges carries, as hex. */
function rangeKeys(r: Request): string[] {
  expect(r.payload.readUInt32LE(0)).toBe(MapId.sourceRanges);
  const n = r.payload.readUInt32LE(4);
  const each = r.op === Op.update ? SOURCE_KEY_BYTES + 4 : SOURCE_KEY_BYTES;
  return Array.from({ length: n }, (_x, i) => hex(r.payload.subarray(8 + i * each, 8 + i * each + SOURCE_KEY_BYTES)));
}
const vipValue = (s: KernelState) => [...s.vips.values()][0]?.value;
/** A trie key as hex (the layout itself is checked literally under "trie keys"). */
function trieKey(length: number, id: number, address: string): string {
  const b = Buffer.alloc(SOURCE_KEY_BYTES);
  b.writeUInt32LE(32 + length, 0);
  b.writeUInt32LE(id, 4);
  Buffer.from(address, 'hex').copy(b, 8);
  return hex(b);
}

describe('bpf source ranges - trie keys', () => {
  test.each([
    ['10.0.0.0/8', 3, '28000000' + '03000000' + '0a000000' + '00'.repeat(12)],
    ['198.18.4.7/32', 0, '40000000' + '00000000' + 'c6120407' + '00'.repeat(12)],
    ['0.0.0.0/0', 1, '20000000' + '01000000' + '00'.repeat(16)],
    ['2001:db8::/32', 7, '40000000' + '07000000' + '20010db8' + '00'.repeat(12)],
    ['2001:db8:77:1::2/128', 4095, 'a0000000' + 'ff0f0000' + '20010db8007700010000000000000002'],
  ])('%s of VIP id %i: {32 + length, id, address padded to 16}', (prefix, id, want) => {
    const [v] = norm([table([prefix], prefix.includes(':') ? '2001:db8:77:9::1' : undefined)]);
    const [p] = (v as NormalizedVip).sources ?? [];
    expect(hex(encodeSourceKey(id, rangeKey(p?.bytes as Uint8Array, p?.length as number)))).toBe(want);
  });

  test('the constants agree with native/bpf/node-maps.h (the trie size, the drop slot, the VIP flag)', () => {
    const h = readFileSync(new URL('../../native/bpf/node-maps.h', import.meta.url), 'utf8');
    const value = (name: string): number => Number(new RegExp(`${name}\\s*=?\\s*(\\d+)`).exec(h)?.[1]);
    expect(value('#define L4F_MAX_SOURCE_RANGES')).toBe(MAX_SOURCE_ENTRIES);
    expect(value('L4F_DROP_SOURCE')).toBe(STAT.source);
    expect(value('L4F_VIP_SOURCE_RANGES')).toBe(VIP_SOURCE_RANGES);
  });

  const u32 = (x: number) => Buffer.from(Uint32Array.of(x).buffer);
  /** A dump of two VIPs (ids 2: IPv4, 5: IPv6) and these l4f_src_ranges keys. */
  const dumpWith = (keys: Buffer[]): Buffer => {
    const vip = (id: number, family: 4 | 6) =>
      Buffer.concat([
        encodeVipKey({
          family,
          addressHex: family === 4 ? 'c6336407' : '20010db8'.padEnd(32, '0'),
          port: 80,
          protocol: 'tcp',
        }),
        encodeVip({
          id,
          table: 2 * id,
          size: 251,
          seed: 1,
          hash: '5-tuple',
          forwarding: 'l2',
          guePort: 6080,
          sourceRanges: true,
          draining: false,
        }),
      ]);
    const head = [u32(2), vip(2, 4), vip(5, 6), u32(0), u32(0), u32(0), Buffer.alloc(CONFIG_BYTES), u32(0), u32(0)];
    return Buffer.concat([...head, u32(keys.length), ...keys]);
  };
  const rawKey = (prefixLength: number, id: number, address: number[]): Buffer =>
    Buffer.from(trieKey(prefixLength, id, Buffer.from(address).toString('hex')), 'hex');

  // A key the driver never writes is not named as the prefix it resembles: 10.0.0.5/24 read as 10.0.0.0/24 made
  // the plan add the canonical key and delete this one, the same trie node, so the VIP kept its flag with no entry.
  test.each([
    [
      'host bits set (10.0.0.5/24)',
      rawKey(24, 2, [10, 0, 0, 5]),
      /key 38000000020000000a000005.*: address: 10\.0\.0\.5 has bits set past \/24/,
    ],
    ['an IPv4 length of 33', rawKey(33, 2, [10, 0, 0, 5]), /: length: 33 is not 0-32 \(the VIP is IPv4\)/],
    [
      'bytes past 4 set under an IPv4 VIP',
      rawKey(32, 2, [10, 0, 0, 5, 1]),
      /: address: 10\.0\.0\.5 has bits set past \/32/,
    ],
    ['an IPv6 length of 129', rawKey(129, 5, [0x20, 1]), /: length: 129 is not 0-128 \(the VIP is IPv6\)/],
    [
      'host bits under a VIP id no VIP has',
      rawKey(8, 9, [10, 1]),
      /key 28000000090000000a01.*: address: 0a01.* has bits set past \/8/,
    ],
  ])('a trie key with %s is refused as unreadable state', (_, key, message) => {
    let err: unknown;
    try {
      decodeDump(dumpWith([key]));
    } catch (e) {
      err = e;
    }
    expect((err as DataPlaneError).code).toBe('BPF_STATE_UNREADABLE');
    expect((err as Error).message).toMatch(message);
  });

  test('the dump section reads back per VIP id, named in its VIP family; a dump without it (an older loader) has none', () => {
    // Two VIPs (ids 2: IPv4, 5: IPv6), no addresses, backends, config, tables or previous owners.
    const vip = (id: number, family: 4 | 6) =>
      Buffer.concat([
        encodeVipKey({
          family,
          addressHex: family === 4 ? 'c6336407' : '20010db8'.padEnd(32, '0'),
          port: 80,
          protocol: 'tcp',
        }),
        encodeVip({
          id,
          table: 2 * id,
          size: 251,
          seed: 1,
          hash: '5-tuple',
          forwarding: 'l2',
          guePort: 6080,
          sourceRanges: true,
          draining: false,
        }),
      ]);
    const head = Buffer.concat([
      u32(2),
      vip(2, 4),
      vip(5, 6),
      u32(0),
      u32(0),
      u32(0),
      Buffer.alloc(CONFIG_BYTES),
      u32(0),
      u32(0),
    ]);
    const keys = [
      encodeSourceKey(2, rangeKey(Uint8Array.from([10, 1, 0, 0]), 16)),
      encodeSourceKey(2, rangeKey(Uint8Array.from([198, 18, 4, 7]), 32)),
      encodeSourceKey(5, rangeKey(Uint8Array.from([0x20, 0x01, 0x0d, 0xb8, 0, 0xaa]), 48)),
      encodeSourceKey(9, rangeKey(Uint8Array.from([10]), 8)), // an id no VIP has: named by its key
    ];
    const d = decodeDump(Buffer.concat([head, u32(keys.length), ...keys]));
    expect([...d.ranges].map(([id, m]) => [id, [...m.keys()]])).toEqual([
      [2, ['10.1.0.0/16', '198.18.4.7/32']],
      [5, ['2001:db8:aa::/48']],
      [9, [`0a${'0'.repeat(30)}/8`]],
    ]);
    expect(d.ranges.get(2)?.get('10.1.0.0/16')).toBe(`0a01${'0'.repeat(28)}/16`);
    expect(decodeDump(head).ranges.size).toBe(0);
  });
});

describe('bpf source ranges - plan', () => {
  test('a new VIP with ranges: its entries before the VIP entry, which carries the flag', () => {
    const p = plan(emptyState(), [table(['10.0.0.0/8', '198.18.4.7/32'])]);
    expect(p.requests.map((r) => r.what)).toEqual([
      'config',
      'backends',
      'table-create 198.51.100.7:80/tcp',
      'source ranges',
      'vips',
      'vip addresses',
    ]);
    expect(rangeKeys(p.requests[3] as Request)).toEqual([trieKey(8, 0, '0a'), trieKey(32, 0, 'c6120407')]);
    const vips = p.requests[4] as Request;
    expect(decodeVip(vips.payload, 8 + 20, 'v').sourceRanges).toBe(true);
    expect(vipValue(p.next)?.sourceRanges).toBe(true);
  });

  test('the same ranges again (also in another order) send nothing', () => {
    const first = plan(emptyState(), [table(['10.0.0.0/8', '198.18.4.7/32'])]);
    const again = plan(first.next, [table(['198.18.4.7/32', '10.0.0.0/8'])]);
    expect(again.requests).toEqual([]);
    expect(again.vips[0]?.action).toBe('unchanged');
  });

  test('changed ranges: the added prefixes before, the removed after; no table write, no VIP entry, flows untouched', () => {
    const first = plan(emptyState(), [table(['10.0.0.0/8', '198.18.4.7/32'])]);
    const p = plan(first.next, [table(['10.0.0.0/8', '198.19.254.0/24'])]);
    expect(p.requests.map((r) => [r.op, r.what])).toEqual([
      [Op.update, 'source ranges'],
      [Op.delete, 'source ranges'],
    ]);
    expect(rangeKeys(p.requests[0] as Request)).toEqual([trieKey(24, 0, 'c613fe')]);
    expect(rangeKeys(p.requests[1] as Request)).toEqual([trieKey(32, 0, 'c6120407')]);
    expect(p.vips[0]).toEqual({ vip: '198.51.100.7:80/tcp', action: 'updated', slotsChanged: 0, rulesReplaced: false });
    expect(p.next.tables).toEqual(first.next.tables);
  });

  test('ranges removed: the flag is cleared first, then the entries go; ranges given to a VIP: entries, then the flag', () => {
    const filtered = plan(emptyState(), [table(['10.0.0.0/8'])]);
    const open = plan(filtered.next, [table()]);
    expect(open.requests.map((r) => [r.op, r.what])).toEqual([
      [Op.update, 'vips'],
      [Op.delete, 'source ranges'],
    ]);
    expect(vipValue(open.next)?.sourceRanges).toBe(false);
    expect(open.next.ranges.size).toBe(0);
    const again = plan(open.next, [table(['10.0.0.0/8'])]);
    expect(again.requests.map((r) => [r.op, r.what])).toEqual([
      [Op.update, 'source ranges'],
      [Op.update, 'vips'],
    ]);
  });

  test('a removed VIP loses its entries after its VIP entry; entries of a VIP id no VIP holds are deleted', () => {
    const two = plan(emptyState(), [table(['10.0.0.0/8']), table(['198.19.254.0/24'], '198.51.100.8')]);
    const one = plan(two.next, [table(['10.0.0.0/8'])]);
    expect(one.requests.map((r) => [r.op, r.what])).toEqual([
      [Op.delete, 'vip addresses'],
      [Op.delete, 'vips'],
      [Op.delete, 'source ranges'],
      [Op.update, 'backends leaving'],
    ]);
    expect(rangeKeys(one.requests[2] as Request)).toEqual([trieKey(24, 1, 'c613fe')]);
    // What an apply interrupted between the entries and the VIP entry leaves: entries of an id without a VIP.
    const ranges: KernelRanges = new Map([...one.next.ranges, [9, new Map([['10.0.0.0/8', '0a/8']])]]);
    const left: KernelState = { ...one.next, ranges };
    const cleaned = plan(left, [table(['10.0.0.0/8'])]);
    expect(cleaned.requests.map((r) => r.what)).toEqual(['source ranges']);
    expect(rangeKeys(cleaned.requests[0] as Request)).toEqual([trieKey(8, 9, '0a')]);
  });

  // Verify after the VIP entry was deleted by hand (or an apply cut between the VIP delete and its entries' delete)
  // reads id 0's entry with no VIP to name it in a family, so by its key; the re-added VIP gets id 0 back. Matched by
  // text alone, the plan added that key and, after the VIP entry, deleted the same key: the VIP flagged, no entry.
  test('entries of an id no VIP holds, read back and given to a VIP with the same prefix: kept, nothing written', () => {
    const u32 = (x: number) => Buffer.from(Uint32Array.of(x).buffer);
    const head = [u32(0), u32(0), u32(0), u32(0), Buffer.alloc(CONFIG_BYTES), u32(0), u32(0)];
    const key = encodeSourceKey(0, rangeKey(Uint8Array.from([10]), 8));
    const { ranges } = decodeDump(Buffer.concat([...head, u32(1), key]));
    expect([...(ranges.get(0)?.keys() ?? [])]).toEqual([`0a${'0'.repeat(30)}/8`]);
    const p = plan({ ...emptyState(), ranges }, [table(['10.0.0.0/8'])]);
    expect(p.requests.map((r) => r.what)).toEqual([
      'config',
      'backends',
      'table-create 198.51.100.7:80/tcp',
      'vips',
      'vip addresses',
    ]);
    expect(vipValue(p.next)?.id).toBe(0);
    expect(vipValue(p.next)?.sourceRanges).toBe(true);
    expect([...(p.next.ranges.get(0) ?? [])]).toEqual([['10.0.0.0/8', `0a${'0'.repeat(30)}/8`]]);
    // Named by text now: the next apply sends nothing.
    expect(plan(p.next, [table(['10.0.0.0/8'])]).requests).toEqual([]);
  });

  test('an entry named otherwise than its prefix: matched by key, only the other prefixes added and removed', () => {
    const prefix = (a: number[], length: number): SourcePrefix => {
      const bytes = Uint8Array.from(a);
      return { family: 4, bytes, length, text: `${a.join('.')}/${length}` };
    };
    const [ten, eleven, twelve] = [prefix([10, 0, 0, 0], 8), prefix([11, 0, 0, 0], 8), prefix([12, 0, 0, 0], 8)];
    const raw = (p: SourcePrefix) => rangeKey(p.bytes, p.length);
    const kernel: KernelRanges = new Map([
      [
        3,
        new Map([
          [raw(ten), raw(ten)],
          [raw(eleven), raw(eleven)],
        ]),
      ],
    ]);
    const r = planRanges(kernel, new Map([[3, [ten, twelve]]]));
    expect(r.ups.map(([k]) => hex(k as Buffer))).toEqual([trieKey(8, 3, '0c')]);
    expect(r.downs.map(([k]) => hex(k as Buffer))).toEqual([trieKey(8, 3, '0b')]);
    expect([...(r.next.get(3) ?? [])]).toEqual([
      ['10.0.0.0/8', raw(ten)],
      ['12.0.0.0/8', raw(twelve)],
    ]);
    // The same key under two names (text and raw) is one trie entry: deleted by neither.
    const both: KernelRanges = new Map([
      [
        3,
        new Map([
          ['10.0.0.0/8', raw(ten)],
          [raw(ten), raw(ten)],
        ]),
      ],
    ]);
    const b = planRanges(both, new Map([[3, [ten]]]));
    expect([b.ups.length, b.downs.length]).toEqual([0, 0]);
  });

  test('deletes go first when old and new together would not fit the trie', () => {
    const prefixes = (base: number, n: number): SourcePrefix[] =>
      Array.from({ length: n }, (_x, i) => {
        const bytes = Uint8Array.from([base, i >> 8, i & 255, 0]);
        return { family: 4, bytes, length: 24, text: `${[...bytes].join('.')}/24` };
      });
    const entries = (base: number, n: number) =>
      new Map(prefixes(base, n).map((p) => [p.text, rangeKey(p.bytes, p.length)]));
    const kernel: KernelRanges = new Map([[0, entries(10, MAX_TOTAL_SOURCE_RANGES)]]);
    expect(planRanges(kernel, new Map([[0, prefixes(11, MAX_TOTAL_SOURCE_RANGES)]])).deletesFirst).toBe(false);
    const over: KernelRanges = new Map([...kernel, [1, entries(12, MAX_SOURCE_ENTRIES - MAX_TOTAL_SOURCE_RANGES)]]);
    const r = planRanges(over, new Map([[0, prefixes(11, MAX_TOTAL_SOURCE_RANGES)]]));
    expect([r.deletesFirst, r.ups.length, r.downs.length]).toEqual([true, MAX_TOTAL_SOURCE_RANGES, MAX_SOURCE_ENTRIES]);
  });

  test('a VIP whose prefixes are all there keeps its entries as they are (no new map)', () => {
    const first = plan(emptyState(), [table(['10.0.0.0/8', '198.18.4.7/32'])]);
    const again = planRanges(
      first.next.ranges,
      new Map([[0, norm([table(['198.18.4.7/32', '10.0.0.0/8'])])[0]?.sources]]),
    );
    expect([again.ups.length, again.downs.length, again.changed.size]).toEqual([0, 0, 0]);
    expect(again.next.get(0)).toBe(first.next.ranges.get(0));
  });
});
