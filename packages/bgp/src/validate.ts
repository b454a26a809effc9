/** Input validation: every function returns a canonical value or throws a BgpError naming the field and value. */
import { isIPv4, isIPv6 } from 'node:net';
import { canonicalAddress, unusableAddress } from '@l4fleet/config';
import { BgpError } from './errors.js';
import type { Advertisement, GlobalConfig, Peer } from './types.js';

export type IpFamily = 4 | 6;

const MAX_UINT32 = 4_294_967_295;
/** Linux TCP_MD5SIG_MAXKEYLEN, in bytes: longer keys are refused by setsockopt. */
const MAX_MD5_PASSWORD_BYTES = 80;

function show(value: unknown): string {
  return typeof value === 'string' ? `"${value}"` : String(value);
}

/** IP address family of `text`, or undefined when it is not an address. */
export function ipFamily(text: unknown): IpFamily | undefined {
  if (typeof text !== 'string') return undefined;
  if (isIPv4(text)) return 4;
  if (isIPv6(text) && !text.includes('%')) return 6;
  return undefined;
}

/**
 * The canonical text of an address: dotted quad, or RFC 5952 IPv6 (lower case, longest zero run compressed),
 * which is also how gobgpd (Go's net.IP.String) prints it, so reconcile compares equal strings. The one formatter
 * is config's, which makes VIP addresses canonical too.
 */
export function canonicalIp(text: string): string {
  return canonicalAddress(text).address;
}

function assertIp(field: string, value: unknown, code: 'NEXT_HOP_INVALID' | 'PEER_ADDRESS_INVALID'): IpFamily {
  const family = ipFamily(value);
  if (family === undefined) throw new BgpError(code, `${field} ${show(value)} is not an IPv4 or IPv6 address`);
  return family;
}

export interface ParsedPrefix {
  family: IpFamily;
  address: string;
  length: 32 | 128;
  /** Canonical `address/length`. */
  text: string;
}

/** Parses a VIP host route: `a.b.c.d/32` or `x:y::z/128` (an address without length is taken as a host route). */
export function parsePrefix(value: unknown, field = 'prefix'): ParsedPrefix {
  if (typeof value !== 'string') throw new BgpError('PREFIX_INVALID', `${field} ${show(value)} is not a string`);
  const slash = value.indexOf('/');
  const addr = slash < 0 ? value : value.slice(0, slash);
  const family = ipFamily(addr);
  if (family === undefined) {
    throw new BgpError('PREFIX_INVALID', `${field} ${show(value)}: "${addr}" is not an IPv4 or IPv6 address`);
  }
  const hostLength = family === 4 ? 32 : 128;
  const lengthText = slash < 0 ? String(hostLength) : value.slice(slash + 1);
  if (lengthText !== String(hostLength)) {
    throw new BgpError(
      'PREFIX_INVALID',
      `${field} ${show(value)}: a VIP is a host route, /${hostLength} for IPv${family}`,
    );
  }
  const address = canonicalIp(addr);
  const embedded = family === 6 ? embeddedIpv4(address) : undefined;
  if (embedded) {
    throw new BgpError('PREFIX_INVALID', `${field} ${show(value)}: ${embedded}; write the IPv4 address`);
  }
  return { family, address, length: hostLength, text: `${address}/${hostLength}` };
}

/** The 16-bit groups of a canonical IPv6 text (no dotted quad: canonicalIp prints every group in hex). */
function ipv6Groups(text: string): number[] {
  const [head = '', tail] = text.split('::');
  const part = (s: string) => (s === '' ? [] : s.split(':').map((g) => Number.parseInt(g, 16)));
  if (tail === undefined) return part(head);
  const h = part(head);
  const t = part(tail);
  return [...h, ...new Array(8 - h.length - t.length).fill(0), ...t];
}

/**
 * Why an IPv6 host route carries an IPv4 address, or undefined. gobgpd prints an IPv4-mapped prefix
 * (::ffff:0:0/96, RFC 4291 §2.5.5.2) as the IPv4 one, so reconcile never found ours and re-announced it at every
 * resync; IPv4-compatible addresses (::/96 past ::0.255.255.255, RFC 4291 §2.5.5.1) are deprecated. Config refuses
 * both as VIPs (address-use.ts) for the same reasons.
 */
function embeddedIpv4(address: string): string | undefined {
  const g = ipv6Groups(address);
  if (g.slice(0, 5).some((x) => x !== 0)) return undefined;
  if (g[5] === 0xffff) return 'an IPv4-mapped address (::ffff:0:0/96)';
  if (g[5] === 0 && (g[6] ?? 0) >= 0x100) return 'an IPv4-compatible address (deprecated, RFC 4291 §2.5.5.1)';
  return undefined;
}

/** Validates an AS number (1-4294967295; RFC 6793 four-octet AS). */
export function validateAsn(value: unknown, field = 'asn'): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > MAX_UINT32) {
    throw new BgpError('ASN_INVALID', `${field} ${show(value)} is not an AS number (1-4294967295)`);
  }
  return value;
}

/** Validates a BGP identifier: a non-zero IPv4 address (RFC 6286 §2.1). */
export function validateRouterId(value: unknown, field = 'routerId'): string {
  if (ipFamily(value) !== 4 || canonicalIp(value as string) === '0.0.0.0') {
    throw new BgpError('ROUTER_ID_INVALID', `${field} ${show(value)} is not a non-zero IPv4 address`);
  }
  return canonicalIp(value as string);
}

/** Parses a standard community `ASN:VALUE` (RFC 1997) into its 32-bit value. */
export function parseCommunity(value: unknown, field = 'community'): number {
  const m = typeof value === 'string' ? /^(\d{1,5}):(\d{1,5})$/.exec(value) : null;
  const hi = m ? Number(m[1]) : Number.NaN;
  const lo = m ? Number(m[2]) : Number.NaN;
  if (!(hi <= 0xffff && lo <= 0xffff)) {
    throw new BgpError('COMMUNITY_INVALID', `${field} ${show(value)} is not ASN:VALUE with both parts 0-65535`);
  }
  return hi * 0x10000 + lo;
}

/** Formats a 32-bit community value as `ASN:VALUE`. */
export function formatCommunity(value: number): string {
  return `${Math.floor(value / 0x10000)}:${value % 0x10000}`;
}

function validateUint32(value: unknown, field: string, code: 'MED_INVALID' | 'LOCAL_PREF_INVALID'): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_UINT32) {
    throw new BgpError(code, `${field} ${show(value)} is not an integer 0-4294967295`);
  }
  return value;
}

/** An advertisement in canonical form: canonical prefix and next hop, communities sorted and deduplicated. */
export interface CanonicalAdvertisement {
  prefix: string;
  family: IpFamily;
  nextHop: string;
  communities: readonly string[];
  med: number | undefined;
  localPref: number | undefined;
}

/** Validates one advertisement; `field` prefixes messages (e.g. `advertisements[2]`). */
export function canonicalAdvertisement(adv: Advertisement, field = 'advertisement'): CanonicalAdvertisement {
  const prefix = parsePrefix(adv?.prefix, `${field}.prefix`);
  const hopFamily = assertIp(`${field}.nextHop`, adv.nextHop, 'NEXT_HOP_INVALID');
  if (hopFamily !== prefix.family) {
    throw new BgpError(
      'NEXT_HOP_FAMILY_MISMATCH',
      `${field}.nextHop "${adv.nextHop}" is IPv${hopFamily} but prefix "${adv.prefix}" is IPv${prefix.family}`,
    );
  }
  const nextHop = canonicalIp(adv.nextHop);
  // The router forwards the VIP's traffic here: multicast, unspecified, loopback, broadcast or link-local (RFC 2545
  // §3 wants a global IPv6 next hop) would blackhole it at the router, or the router would drop the route.
  const why = unusableAddress(nextHop);
  if (why) {
    throw new BgpError(
      'NEXT_HOP_INVALID',
      `${field}.nextHop "${adv.nextHop}" is ${why}: not a next hop a router can forward to`,
    );
  }
  const values = (adv.communities ?? []).map((c, i) => parseCommunity(c, `${field}.communities[${i}]`));
  const communities = [...new Set(values)].sort((a, b) => a - b).map(formatCommunity);
  return {
    prefix: prefix.text,
    family: prefix.family,
    nextHop,
    communities,
    med: adv.med === undefined ? undefined : validateUint32(adv.med, `${field}.med`, 'MED_INVALID'),
    localPref:
      adv.localPref === undefined
        ? undefined
        : validateUint32(adv.localPref, `${field}.localPref`, 'LOCAL_PREF_INVALID'),
  };
}

/** Validates a whole desired set: each entry, and at most one advertisement per prefix. */
export function canonicalAdvertisements(advs: readonly Advertisement[]): Map<string, CanonicalAdvertisement> {
  const out = new Map<string, CanonicalAdvertisement>();
  advs.forEach((adv, i) => {
    const c = canonicalAdvertisement(adv, `advertisements[${i}]`);
    if (out.has(c.prefix)) {
      throw new BgpError('PREFIX_DUPLICATE', `advertisements[${i}].prefix "${adv.prefix}" is announced twice`);
    }
    out.set(c.prefix, c);
  });
  return out;
}

/** Same advertisement on the wire? (Both canonical.) */
export function sameAdvertisement(a: CanonicalAdvertisement, b: CanonicalAdvertisement): boolean {
  return (
    a.prefix === b.prefix &&
    a.nextHop === b.nextHop &&
    a.med === b.med &&
    a.localPref === b.localPref &&
    a.communities.length === b.communities.length &&
    a.communities.every((c, i) => c === b.communities[i])
  );
}

export const DEFAULT_HOLD_TIME_S = 3;
export const DEFAULT_KEEPALIVE_S = 1;
export const DEFAULT_CONNECT_RETRY_S = 5;
export const DEFAULT_BGP_PORT = 179;

/** A peer with every default filled in and addresses canonical. */
export interface CanonicalPeer {
  address: string;
  asn: number;
  password: string;
  holdTimeS: number;
  keepaliveS: number;
  connectRetryS: number;
  port: number;
  localAddress: string;
  passive: boolean;
  ebgpMultihopTtl: number;
  description: string;
}

function validatePort(value: unknown, field: string, allowNoListener = false): number {
  const ok =
    typeof value === 'number' &&
    Number.isInteger(value) &&
    ((value >= 1 && value <= 65535) || (allowNoListener && value === -1));
  if (!ok) {
    const range = allowNoListener ? '1-65535, or -1 for no listener' : '1-65535';
    throw new BgpError('PORT_INVALID', `${field} ${show(value)} is not a TCP port (${range})`);
  }
  return value as number;
}

function validateSeconds(value: unknown, field: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new BgpError('TIMER_INVALID', `${field} ${show(value)} is not a whole number of seconds ${min}-${max}`);
  }
  return value;
}

/** Validates one peer and fills its defaults; `field` prefixes messages (e.g. `peers[0]`). */
export function canonicalPeer(peer: Peer, field = 'peer'): CanonicalPeer {
  assertIp(`${field}.address`, peer?.address, 'PEER_ADDRESS_INVALID');
  const asn = validateAsn(peer.asn, `${field}.asn`);
  // RFC 4271 §4.2 allows a hold time of 0 (no keepalives), but gobgpd's API reads a timer of 0 as unset (hold 90 s,
  // keepalive a third of it): ListPeer would never report what was asked for, so the peer would be re-created at
  // every resync and the session never came up. Both timers are refused at 0.
  const holdTimeS = validateSeconds(peer.holdTimeS ?? DEFAULT_HOLD_TIME_S, `${field}.holdTimeS`, 0, 65535);
  if (holdTimeS === 0) {
    throw new BgpError('TIMER_INVALID', `${field}.holdTimeS 0 cannot be set: gobgpd reads 0 as unset (hold 90 s)`);
  }
  if (holdTimeS < 3) {
    throw new BgpError('TIMER_INVALID', `${field}.holdTimeS ${holdTimeS} must be at least 3 (RFC 4271 §4.2)`);
  }
  const keepaliveS = validateSeconds(peer.keepaliveS ?? DEFAULT_KEEPALIVE_S, `${field}.keepaliveS`, 0, 21845);
  if (keepaliveS === 0) {
    throw new BgpError(
      'TIMER_INVALID',
      `${field}.keepaliveS 0 cannot be set: gobgpd reads 0 as unset (a third of the hold time)`,
    );
  }
  if (keepaliveS >= holdTimeS) {
    throw new BgpError('TIMER_INVALID', `${field}.keepaliveS ${keepaliveS} must be below holdTimeS ${holdTimeS}`);
  }
  const password = peer.password ?? '';
  if (typeof password !== 'string') {
    throw new BgpError('PASSWORD_INVALID', `${field}.password ${show(password)} is not a string`);
  }
  // The kernel counts bytes: 80 'é' are 160 bytes, refused by setsockopt, and the session never came up.
  const passwordBytes = Buffer.byteLength(password, 'utf8');
  if (passwordBytes > MAX_MD5_PASSWORD_BYTES) {
    throw new BgpError(
      'PASSWORD_INVALID',
      `${field}.password is ${passwordBytes} bytes in UTF-8; TCP MD5 keys are at most ${MAX_MD5_PASSWORD_BYTES} bytes (Linux)`,
    );
  }
  let localAddress = '';
  if (peer.localAddress !== undefined) {
    assertIp(`${field}.localAddress`, peer.localAddress, 'PEER_ADDRESS_INVALID');
    localAddress = canonicalIp(peer.localAddress);
  }
  const ttl = peer.ebgpMultihopTtl;
  return {
    address: canonicalIp(peer.address),
    asn,
    password,
    holdTimeS,
    keepaliveS,
    connectRetryS: validateSeconds(peer.connectRetryS ?? DEFAULT_CONNECT_RETRY_S, `${field}.connectRetryS`, 1, 65535),
    port: validatePort(peer.port ?? DEFAULT_BGP_PORT, `${field}.port`),
    localAddress,
    passive: peer.passive === true,
    ebgpMultihopTtl: ttl === undefined ? 0 : validateSeconds(ttl, `${field}.ebgpMultihopTtl`, 1, 255),
    description: peer.description ?? '',
  };
}

/** Validates a whole peer set: each entry, and each address once. */
export function canonicalPeers(peers: readonly Peer[]): Map<string, CanonicalPeer> {
  const out = new Map<string, CanonicalPeer>();
  peers.forEach((p, i) => {
    const c = canonicalPeer(p, `peers[${i}]`);
    if (out.has(c.address)) {
      throw new BgpError('PEER_DUPLICATE', `peers[${i}].address "${p.address}" is configured twice`);
    }
    out.set(c.address, c);
  });
  return out;
}

/** A global config with defaults filled in. */
export interface CanonicalGlobal {
  asn: number;
  routerId: string;
  listenPort: number;
  listenAddresses: readonly string[];
}

export function canonicalGlobal(g: GlobalConfig): CanonicalGlobal {
  const listenAddresses = (g?.listenAddresses ?? []).map((a, i) => {
    assertIp(`listenAddresses[${i}]`, a, 'PEER_ADDRESS_INVALID');
    return canonicalIp(a);
  });
  return {
    asn: validateAsn(g?.asn),
    routerId: validateRouterId(g.routerId),
    listenPort: validatePort(g.listenPort ?? DEFAULT_BGP_PORT, 'listenPort', true),
    listenAddresses,
  };
}
