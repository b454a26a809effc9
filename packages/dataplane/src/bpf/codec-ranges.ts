/** Byte layout of the l4f_src_ranges keys (native/bpf/node-maps.h) and their read-back from a dump. */
import { addressText as familyAddressText } from '@l4fleet/config';
import { UnreadableMapError, unreadable } from './codec-bytes.js';

/** struct l4f_src_key: u32 prefix length (32 + the prefix's), u32 VIP id, address[16] (src/bpf/source-ranges.ts). */
export const SOURCE_KEY_BYTES = 24;

/**
 * `<address bytes zero-padded to 16, hex>/<length>`: a source prefix as l4f_src_ranges keys it, without its family
 * (src/bpf/source-ranges.ts).
 */
export const rangeKey = (bytes: Uint8Array, length: number): string =>
  `${Buffer.from(bytes).toString('hex').padEnd(32, '0')}/${length}`;

/** The l4f_src_ranges key of `range` (a rangeKey) for the VIP `vipId`: {u32 32 + length, u32 vip id, address[16]}. */
export function encodeSourceKey(vipId: number, range: string): Buffer {
  const [hex, length] = range.split('/') as [string, string];
  const b = Buffer.alloc(SOURCE_KEY_BYTES);
  b.writeUInt32LE(32 + Number(length), 0);
  b.writeUInt32LE(vipId, 4);
  Buffer.from(hex, 'hex').copy(b, 8);
  return b;
}

/** Per VIP id: its l4f_src_ranges entries, canonical prefix text -> rangeKey (src/bpf/source-ranges.ts). */
export type KernelRanges = Map<number, ReadonlyMap<string, string>>;

/** Whether any of the 16 address bytes at `b[at]` has a bit set past the first `length` bits. */
function hostBits(b: Buffer, at: number, length: number): boolean {
  for (let i = length >> 3; i < 16; i++) {
    const keep = i === length >> 3 ? (0xff00 >> (length & 7)) & 0xff : 0;
    if (((b[at + i] as number) & ~keep & 0xff) !== 0) return true;
  }
  return false;
}

/**
 * The l4f_src_ranges keys of a dump (u32 n, n x key) from `at`, each named by its canonical text in the family of
 * the VIP with its id (a key has no family); a key of an id no VIP has is named by its rangeKey: the next apply
 * deletes it, unless a VIP given that id wants its prefix, which planRanges then finds by key and keeps. Read from
 * the reply's bytes: a restart names up to 32,768 keys.
 * A key the driver never writes (a length past its family's, bits set past the length) is refused: named as the
 * canonical prefix it resembles, the plan would add that prefix's key and then delete this one, which in the trie
 * is the same entry, leaving the VIP flagged with no entry (every source dropped) and the model saying present.
 */
export function decodeRanges(b: Buffer, at: number, families: ReadonlyMap<number, 4 | 6>): KernelRanges {
  const out = new Map<number, Map<string, string>>();
  const n = b.readUInt32LE(at);
  for (let i = 0, k = at + 4; i < n; i++, k += SOURCE_KEY_BYTES) {
    const length = b.readUInt32LE(k) - 32;
    const vipId = b.readUInt32LE(k + 4);
    const key = `${b.toString('hex', k + 8, k + SOURCE_KEY_BYTES)}/${length}`;
    const family = families.get(vipId);
    const label = `key ${b.toString('hex', k, k + SOURCE_KEY_BYTES)}`;
    const max = family === 4 ? 32 : 128;
    if (length < 0 || length > max) {
      const vip = family === undefined ? 'no VIP has its id' : `the VIP is IPv${family}`;
      throw unreadable('l4f_src_ranges', label, 'length', length, `0-${max} (${vip})`);
    }
    const address =
      family === 4
        ? `${b[k + 8]}.${b[k + 9]}.${b[k + 10]}.${b[k + 11]}`
        : family === 6
          ? familyAddressText(6, b.subarray(k + 8, k + SOURCE_KEY_BYTES))
          : undefined;
    if (hostBits(b, k + 8, length)) {
      const text = address ?? b.toString('hex', k + 8, k + SOURCE_KEY_BYTES);
      throw new UnreadableMapError(
        'l4f_src_ranges',
        `l4f_src_ranges ${label}: address: ${text} has bits set past /${length}`,
      );
    }
    const named = out.get(vipId) ?? new Map<string, string>();
    named.set(address === undefined ? key : `${address}/${length}`, key);
    out.set(vipId, named);
  }
  return out;
}
