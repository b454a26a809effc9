/**
 * Addresses that parse but cannot be a VIP or a pool member: no client can reach them across the router, or no
 * backend can own them. Ranges from the IANA special-purpose registries (RFC 6890) and RFC 4291 (IPv6).
 */
import { parseAddress } from '@l4fleet/maglev';

interface SpecialRange {
  readonly family: 4 | 6;
  readonly prefix: readonly number[];
  readonly bits: number;
  readonly what: string;
  /** Refused as a VIP only: the userspace proxy reaches a loopback member (directReturnProblems() refuses it). */
  readonly vipOnly?: boolean;
  /** In the range only if this holds too (a range with exceptions). */
  readonly also?: (bytes: Uint8Array) => boolean;
}

/** Each with why it cannot work: a router does not forward it, or it names no single host. */
const RANGES: readonly SpecialRange[] = [
  { family: 4, prefix: [0, 0, 0, 0], bits: 8, what: 'an unspecified ("this network", RFC 1122) address' },
  { family: 4, prefix: [127, 0, 0, 0], bits: 8, what: 'a loopback address (127.0.0.0/8)', vipOnly: true },
  { family: 4, prefix: [169, 254, 0, 0], bits: 16, what: 'a link-local address (169.254.0.0/16, not routed)' },
  { family: 4, prefix: [224, 0, 0, 0], bits: 4, what: 'a multicast address (224.0.0.0/4)' },
  { family: 4, prefix: [255, 255, 255, 255], bits: 32, what: 'the broadcast address' },
  { family: 4, prefix: [240, 0, 0, 0], bits: 4, what: 'a reserved address (240.0.0.0/4, not routed)' },
  { family: 6, prefix: [], bits: 128, what: 'the unspecified address (::)' },
  { family: 6, prefix: [...new Array(15).fill(0), 1], bits: 128, what: 'the loopback address (::1)', vipOnly: true },
  {
    family: 6,
    prefix: [...new Array(10).fill(0), 0xff, 0xff],
    bits: 96,
    what: 'an IPv4-mapped address (::ffff:0:0/96; write the IPv4 address)',
  },
  {
    // RFC 4291 §2.5.5.1 deprecates "IPv4-compatible" addresses; they were stored as `::c633:6401`, a different
    // address from the IPv4 one written. `::` and `::1` are not among them (listed above), nor ::0.0.0.0/104
    // (no IPv4 host in it; `::2` stays accepted).
    family: 6,
    prefix: [],
    bits: 96,
    what: 'an IPv4-compatible address (::/96, deprecated by RFC 4291 §2.5.5.1; write the IPv4 address)',
    also: (bytes) => bytes[12] !== 0,
  },
  { family: 6, prefix: [0xfe, 0x80], bits: 10, what: 'a link-local address (fe80::/10, not routed)' },
  { family: 6, prefix: [0xff], bits: 8, what: 'a multicast address (ff00::/8)' },
];

function inRange(bytes: Uint8Array, r: SpecialRange): boolean {
  for (let bit = 0; bit < r.bits; bit += 8) {
    const want = r.prefix[bit / 8] ?? 0;
    const have = bytes[bit / 8] ?? 0;
    const left = r.bits - bit;
    const mask = left >= 8 ? 0xff : (0xff << (8 - left)) & 0xff;
    if ((have & mask) !== (want & mask)) return false;
  }
  return r.also?.(bytes) ?? true;
}

/**
 * Why `address` (already valid) cannot be a VIP (`vip`, the default: also what a router cannot forward to, as the
 * agent's next hops) or a member (`member`: loopback allowed, see directReturnProblems), or undefined when it can.
 */
export function unusableAddress(address: string, role: 'vip' | 'member' = 'vip'): string | undefined {
  const parsed = parseAddress(address);
  const hit = RANGES.find(
    (r) => r.family === parsed.family && (role === 'vip' || !r.vipOnly) && inRange(parsed.bytes, r),
  );
  return hit?.what;
}

export function isLoopback(address: string): boolean {
  const parsed = parseAddress(address);
  return RANGES.some((r) => r.vipOnly && r.family === parsed.family && inRange(parsed.bytes, r));
}
