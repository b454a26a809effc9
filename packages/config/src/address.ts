/** Canonical address text, so `2001:DB8:0::53` and `2001:db8::53` are the same VIP on every node. */
import { type IpFamily, parseAddress } from '@l4fleet/maglev';

/** RFC 5952 §4: lowercase, no leading zeros, the longest run (>= 2) of zero groups as `::`. */
function formatIpv6(bytes: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] as number) << 8) | (bytes[i + 1] as number));
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i += 1;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j += 1;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestLen < 2) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/** Parses and canonicalizes an address; throws MaglevError (ADDRESS_INVALID) naming `field`. */
export function canonicalAddress(text: string, field = 'address'): { family: IpFamily; address: string } {
  const parsed = parseAddress(text, field);
  return { family: parsed.family, address: addressText(parsed.family, parsed.bytes) };
}

/** The canonical text of an address's bytes (4 or 16). */
export function addressText(family: IpFamily, bytes: Uint8Array): string {
  return family === 4 ? Array.from(bytes).join('.') : formatIpv6(bytes);
}

/** `198.18.0.21:80`, `[2001:db8::1]:80`. */
export function endpointText(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}
