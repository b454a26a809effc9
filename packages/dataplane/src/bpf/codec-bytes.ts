/** Low-level helpers the codec modules share: read-back errors and the 16-byte address fields of map keys. */
import { DataPlaneError } from '../errors.js';

/** BPF_STATE_UNREADABLE naming the pinned map that holds the value (the driver makes that map anew: repair.ts). */
export class UnreadableMapError extends DataPlaneError {
  readonly map: string;
  constructor(map: string, message: string) {
    super('BPF_STATE_UNREADABLE', message);
    this.map = map;
  }
}

/**
 * A byte read back from the kernel that this driver never writes. Coercing it to a default would let the model
 * match the desired state, and the corrupt entry would never be rewritten: the read-back fails instead.
 */
export function unreadable(
  map: string,
  key: string,
  field: string,
  value: number | string,
  want: string,
): UnreadableMapError {
  return new UnreadableMapError(map, `${map} ${key}: ${field}: ${value} is not ${want}`);
}

export function familyOf(value: number | undefined, map: string, key: string): 4 | 6 {
  if (value === 4 || value === 6) return value;
  throw unreadable(map, key, 'family', value ?? -1, '4 or 6');
}

/**
 * The address of a key at `b[at]` (16 bytes) in its family: an IPv4 key with a byte set past its first 4 is refused.
 * node.bpf.c looks IPv4 addresses up with bytes 4-15 zero, so such an entry never matches a packet; read as the
 * clean address, the model would match the desired state, nothing would rewrite it, and a delete by the clean key
 * would leave it pinned.
 */
export function keyAddress(b: Buffer, at: number, family: 4 | 6, map: string, key: string): string {
  if (family === 4 && b.subarray(at + 4, at + 16).some((x) => x !== 0))
    throw unreadable(map, key, 'address', b.toString('hex', at, at + 16), 'an IPv4 address (bytes 4-15 zero)');
  return b.toString('hex', at, at + (family === 4 ? 4 : 16));
}

export function addr16(hex: string): Buffer {
  const b = Buffer.alloc(16);
  Buffer.from(hex, 'hex').copy(b);
  return b;
}
