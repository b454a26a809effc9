/**
 * A VIP's `sourceRanges`: the client prefixes it admits (an allowlist, like a classic L4 switch's filter on a
 * virtual server, F5's virtual-server source address or Kubernetes' `loadBalancerSourceRanges`). Absent: every
 * client. A packet from any other source is dropped by the node and counted (`drops{reason="source"}`), before
 * flow affinity, so removing a prefix also stops the flows already open from it. ICMP errors about a VIP's flows
 * are not filtered: routers on the path send them (RFC 1191, RFC 8201).
 */
import { type IpFamily, parseAddress } from '@l4fleet/maglev';
import { addressText } from './address.js';
import type { ConfigProblem } from './errors.js';
import { type Problems, showValue } from './fields.js';
import { MAX_SOURCE_RANGES_PER_VIP } from './limits.js';
import type { Fleet } from './types.js';

/** A parsed prefix: the network's bytes (host bits zero) and its length in bits. */
export interface SourcePrefix {
  readonly family: IpFamily;
  readonly bytes: Uint8Array;
  readonly length: number;
  /** Canonical text: `10.0.0.0/8`, `2001:db8::/32` (RFC 5952 address, decimal length). */
  readonly text: string;
}

/** Why `text` is not a prefix, or the prefix. A bare address is its host prefix (/32, /128). */
export function parseSourcePrefix(text: string): SourcePrefix | string {
  const slash = text.indexOf('/');
  const addressPart = slash < 0 ? text : text.slice(0, slash);
  let parsed: { family: IpFamily; bytes: Uint8Array };
  try {
    parsed = parseAddress(addressPart);
  } catch {
    return 'is not an IPv4 or IPv6 prefix (ADDRESS/LENGTH, e.g. 198.18.0.0/15)';
  }
  const bits = parsed.family === 4 ? 32 : 128;
  const lengthText = slash < 0 ? String(bits) : text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(lengthText) || Number(lengthText) > bits) {
    return `has a prefix length other than 0-${bits}`;
  }
  const length = Number(lengthText);
  const bytes = Uint8Array.from(parsed.bytes);
  let hostBits = false;
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, length - i * 8));
    const mask = keep === 0 ? 0 : (0xff << (8 - keep)) & 0xff;
    if (((bytes[i] as number) & ~mask & 0xff) !== 0) hostBits = true;
    bytes[i] = (bytes[i] as number) & mask;
  }
  const network = `${addressText(parsed.family, bytes)}/${length}`;
  return hostBits
    ? `has host bits set (the prefix is ${network})`
    : { family: parsed.family, bytes, length, text: network };
}

/**
 * The `sourceRanges` of a VIP of `family` (undefined when its address is invalid): canonical prefixes in the
 * file's order, or undefined when the field is absent. Every bad entry is reported with its index and value.
 */
export function sourceRangesField(
  p: Problems,
  path: string,
  v: unknown,
  family: IpFamily | undefined,
): readonly string[] | undefined {
  if (v === undefined) return undefined;
  if (!Array.isArray(v)) {
    p.add(path, `${showValue(v)} is not a list of prefixes`);
    return undefined;
  }
  if (v.length === 0) {
    p.add(path, '[] admits no client: leave sourceRanges out to admit every client');
    return undefined;
  }
  if (v.length > MAX_SOURCE_RANGES_PER_VIP) {
    p.add(path, `has ${v.length} prefixes, more than ${MAX_SOURCE_RANGES_PER_VIP} (MAX_SOURCE_RANGES_PER_VIP)`);
    return undefined;
  }
  const out: string[] = [];
  const seen = new Map<string, number>();
  v.forEach((item, i) => {
    const at = `${path}[${i}]`;
    const prefix = typeof item === 'string' ? parseSourcePrefix(item) : 'is not a prefix string';
    if (typeof prefix === 'string') {
      p.add(at, `${showValue(item)} ${prefix}`);
      return;
    }
    if (family !== undefined && prefix.family !== family) {
      p.add(at, `${showValue(item)} is IPv${prefix.family} but the VIP is IPv${family}`);
      return;
    }
    const first = seen.get(prefix.text);
    if (first !== undefined) {
      p.add(at, `${showValue(item)} is listed twice (also at [${first}])`);
      return;
    }
    seen.set(prefix.text, i);
    out.push(prefix.text);
  });
  return out;
}

/**
 * Why an IPv6 prefix lies wholly inside the IPv4-mapped (::ffff:0:0/96) or IPv4-compatible addresses (::/96 less
 * ::0.0.0.0/104, as address-use.ts has them for VIPs and members), or undefined. No packet carries such a source: an
 * IPv4 client's packets are IPv4 and reach IPv4 VIPs, and the proxy takes a dual-stack listener's ::ffff:a.b.c.d
 * clients as IPv4. So the prefix admits nothing on any data plane.
 */
/** Why `r` admits no client (an IPv4-mapped or -compatible IPv6 prefix: no packet carries one); undefined if none. */
export function ipv4InIpv6(r: SourcePrefix): string | undefined {
  if (r.family !== 6 || r.length < 96 || r.bytes.subarray(0, 10).some((b) => b !== 0)) return undefined;
  const mapped = r.bytes[10] === 0xff && r.bytes[11] === 0xff;
  // The network's byte 12 is its fixed bits there (host bits are zero): non-zero, every address of it is non-zero.
  const compatible = r.bytes[10] === 0 && r.bytes[11] === 0 && r.bytes[12] !== 0;
  if (!mapped && !compatible) return undefined;
  const v4 = `${addressText(4, r.bytes.subarray(12))}/${r.length - 96}`;
  return mapped
    ? `is an IPv4-mapped prefix (::ffff:0:0/96; write the IPv4 prefix, ${v4}, on an IPv4 VIP)`
    : `is an IPv4-compatible prefix (::/96, deprecated by RFC 4291 §2.5.5.1; write the IPv4 prefix, ${v4}, on an IPv4 VIP)`;
}

/**
 * sourceRanges prefixes that admit no client (ipv4InIpv6), for `l4fleet apply` to refuse when it reads a file
 * (parseFleetText). Not a problem of parseFleet(): a fleet stored before this check must still load on an upgraded
 * node, where such a prefix only admits nothing while the VIP's other prefixes go on working.
 */
export function sourceRangeFileProblems(fleet: Fleet): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  fleet.vips.forEach((v, i) => {
    v.sourceRanges?.forEach((text, j) => {
      const r = parseSourcePrefix(text);
      const why = typeof r === 'string' ? undefined : ipv4InIpv6(r);
      if (why) out.push({ path: `vips[${i}].sourceRanges[${j}]`, message: `"${text}" ${why}` });
    });
  });
  return out;
}

/**
 * A test of a client address against canonical prefixes (from a parsed fleet): true for every address when
 * `ranges` is undefined. For the drivers that decide in user space (the proxy); the kernel drivers load the
 * same prefixes into their own matchers.
 */
export function sourceAdmits(ranges: readonly string[] | undefined): (address: string) => boolean {
  if (ranges === undefined) return () => true;
  const prefixes = ranges.map((r) => parseSourcePrefix(r)).filter((r): r is SourcePrefix => typeof r !== 'string');
  return (address: string): boolean => {
    let parsed: { family: IpFamily; bytes: Uint8Array };
    // Node reports an IPv4 client of a dual-stack socket as ::ffff:a.b.c.d (RFC 4291 §2.5.5.2), and a link-local
    // IPv6 client with its zone (fe80::1%eth0, RFC 4007 §11): the zone is no part of the address a prefix matches.
    const bare = address.split('%')[0] as string;
    try {
      parsed = parseAddress(bare.startsWith('::ffff:') && bare.includes('.') ? bare.slice(7) : bare);
    } catch {
      return false;
    }
    return prefixes.some((r) => r.family === parsed.family && inPrefix(r, parsed.bytes));
  };
}

function inPrefix(r: SourcePrefix, bytes: Uint8Array): boolean {
  for (let i = 0; i * 8 < r.length; i++) {
    const keep = Math.min(8, r.length - i * 8);
    const mask = (0xff << (8 - keep)) & 0xff;
    if (((bytes[i] as number) & mask) !== r.bytes[i]) return false;
  }
  return true;
}
