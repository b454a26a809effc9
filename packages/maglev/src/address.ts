/** Strict textual IP address parsing to network-order bytes (no I/O, so the package stays pure). */
import { MaglevError } from './errors.js';

export type IpFamily = 4 | 6;

export interface ParsedAddress {
  readonly family: IpFamily;
  /** Network byte order: 4 bytes for IPv4, 16 for IPv6. */
  readonly bytes: Uint8Array;
}

const IPV4_PART = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

function parseIpv4(text: string): Uint8Array | undefined {
  const parts = text.split('.');
  if (parts.length !== 4 || !parts.every((p) => IPV4_PART.test(p))) return undefined;
  return Uint8Array.from(parts.map(Number));
}

function parseIpv6(text: string): Uint8Array | undefined {
  let body = text;
  if (body.includes('%')) return undefined; // zoned (link-local) addresses are never VIPs or flow endpoints
  const lastColon = body.lastIndexOf(':');
  if (body.includes('.', lastColon)) {
    // Embedded IPv4 (RFC 4291 §2.2 form 3): rewrite the dotted quad as two hex groups.
    const v4 = parseIpv4(body.slice(lastColon + 1));
    if (!v4) return undefined;
    const hi = (((v4[0] as number) << 8) | (v4[1] as number)).toString(16);
    const lo = (((v4[2] as number) << 8) | (v4[3] as number)).toString(16);
    body = `${body.slice(0, lastColon + 1)}${hi}:${lo}`;
  }
  const halves = body.split('::');
  if (halves.length > 2) return undefined;
  const toGroups = (s: string): number[] | undefined => {
    if (s === '') return [];
    const out: number[] = [];
    for (const g of s.split(':')) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
      out.push(Number.parseInt(g, 16));
    }
    return out;
  };
  const head = toGroups(halves[0] as string);
  const rest = halves.length === 2 ? toGroups(halves[1] as string) : [];
  if (!head || !rest) return undefined;
  const missing = 8 - head.length - rest.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const groups = [...head, ...new Array<number>(missing).fill(0), ...rest];
  const bytes = new Uint8Array(16);
  groups.forEach((g, i) => {
    bytes[2 * i] = g >> 8;
    bytes[2 * i + 1] = g & 0xff;
  });
  return bytes;
}

/** Parses an IPv4 or IPv6 address; throws MaglevError naming `field` and the value. */
export function parseAddress(text: string, field = 'address'): ParsedAddress {
  if (typeof text === 'string') {
    const v4 = parseIpv4(text);
    if (v4) return { family: 4, bytes: v4 };
    if (text.includes(':')) {
      const v6 = parseIpv6(text);
      if (v6) return { family: 6, bytes: v6 };
    }
  }
  throw new MaglevError('ADDRESS_INVALID', `${field}: ${JSON.stringify(text)} is not an IPv4 or IPv6 address`);
}
