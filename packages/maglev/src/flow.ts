/**
 * The flow hash, bit-identical to what the kernel data plane computes with nftables:
 *
 *   5-tuple:   jhash ip saddr . tcp sport . ip daddr . tcp dport mod M seed S   (udp, ip6 alike)
 *   source-ip: jhash ip saddr mod M seed S
 *
 * nft concatenations put every field in its own 32-bit register: an IPv4 address fills 4 bytes, an
 * IPv6 address 16, and a port 2 bytes in network order followed by 2 zero bytes. So the IPv4 5-tuple
 * hashes 16 bytes and the IPv6 one 40. The 32-bit hash is then scaled onto [0, M) with reciprocal_scale
 * (net/netfilter/nft_hash.c), not taken modulo M. The data-plane tests prove this against the kernel.
 */
import { parseAddress } from './address.js';
import { MaglevError } from './errors.js';
import { jhash, reciprocalScale } from './jhash.js';
import { assertTableSize } from './table.js';

export type Protocol = 'tcp' | 'udp';
/** `5-tuple` spreads every connection; `source-ip` keeps a client on one backend (sticky, "IP hash"). */
export type HashMode = '5-tuple' | 'source-ip';

export interface Flow {
  readonly src: string;
  readonly sport: number;
  readonly dst: string;
  readonly dport: number;
  readonly protocol: Protocol;
}

function assertPort(value: number, field: string): void {
  if (!Number.isInteger(value) || value < 0 || value > 65_535) {
    throw new MaglevError('PORT_INVALID', `${field}: ${String(value)} is not a port (0-65535)`);
  }
}

function assertSeed(seed: number): void {
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffff_ffff) {
    throw new MaglevError('SEED_INVALID', `seed: ${String(seed)} is not an unsigned 32-bit integer`);
  }
}

/** The bytes nft hands to jhash for this flow, in register layout. */
export function flowKey(flow: Flow, mode: HashMode = '5-tuple'): Uint8Array {
  const src = parseAddress(flow.src, 'flow.src');
  // Checked before the source-ip shortcut too: a hash that ignores the ports and the destination must not make a bad
  // one acceptable (explain would name a backend for a flow that cannot exist).
  assertPort(flow.sport, 'flow.sport');
  assertPort(flow.dport, 'flow.dport');
  const dst = parseAddress(flow.dst, 'flow.dst');
  if (src.family !== dst.family) {
    throw new MaglevError(
      'FLOW_FAMILY_MISMATCH',
      `flow: src ${flow.src} is IPv${src.family} but dst ${flow.dst} is IPv${dst.family}`,
    );
  }
  if (mode === 'source-ip') return src.bytes;
  const a = src.bytes.length;
  const key = new Uint8Array(2 * a + 8);
  key.set(src.bytes, 0);
  key[a] = flow.sport >> 8;
  key[a + 1] = flow.sport & 0xff;
  key.set(dst.bytes, a + 4);
  key[2 * a + 4] = flow.dport >> 8;
  key[2 * a + 5] = flow.dport & 0xff;
  return key;
}

/** The kernel's 32-bit jhash of the flow with the fleet's seed. */
export function flowHash(flow: Flow, seed: number, mode: HashMode = '5-tuple'): number {
  assertSeed(seed);
  return jhash(flowKey(flow, mode), seed);
}

/** The table slot the data plane picks for the flow: `jhash ... mod size seed seed`. */
export function slotOf(flow: Flow, size: number, seed: number, mode: HashMode = '5-tuple'): number {
  assertTableSize(size);
  return reciprocalScale(flowHash(flow, seed, mode), size);
}
