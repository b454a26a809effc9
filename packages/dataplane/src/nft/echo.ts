/**
 * Ping to a VIP address in the nftables driver (ICMP echo request, RFC 792; ICMPv6 echo request, RFC 4443 §4.1),
 * answered by the node's netdev table as the bpf driver answers it (design note 0004 "ICMP to a VIP"): the request is
 * turned around where it arrived and leaves by the interface it came in on, from the VIP. Every VIP address of the
 * driver is answered, `l2` and `nat` alike: the netdev hook sees a NAT address's packets before the IP stack does.
 *
 * nft cannot swap two fields: each statement reads the packet as the previous one left it, and no register keeps a
 * value from one statement to the next. So each VIP address has a chain of its own (`echo_<hex>`), whose rule writes
 * the client's address into the destination first and then the VIP, a constant there, into the source; the MACs the
 * same way (the sender's into the destination, then the interface's own, a constant of the layout). `echo4` and
 * `echo6` map an address to its chain. nft keeps the checksums right: the IPv4 header's (addresses, TTL), ICMP's
 * (type), ICMPv6's (type, and the addresses in its pseudo-header). Pure.
 *
 * Fragments are not answered (only the first holds the ICMP header, and a reply to it alone would be half an
 * answer): an IPv4 fragment, or an IPv6 packet with a fragment header first, is dropped as `drop_fragment`, one with
 * any other extension header meets the port filter, as in bpf (ruleset.ts baseChainRules).
 */
import type { IpFamily } from '@l4fleet/maglev';
import { echoChain, echoMap, hexToAddress, ICMP_ECHO } from './names.js';
import type { Op } from './ops.js';

/** The pieces the ruleset needs in its fields: interface, its MAC. */
export interface EchoLayout {
  readonly iface: string;
  readonly ifaceMac: string;
}

const FAMILIES: readonly IpFamily[] = [4, 6];

const echoMapType = (f: IpFamily): string => `{ type ${f === 4 ? 'ipv4_addr' : 'ipv6_addr'} : verdict; }`;

/** The echo maps and counter, as lines of a `table netdev T { }` block. */
export function echoDeclarations(): string[] {
  return [`  counter ${ICMP_ECHO} { }`, ...FAMILIES.map((f) => `  map ${echoMap(f)} ${echoMapType(f)}`)];
}

/** The same objects added to an existing table (one written before them). */
export function echoObjectsAdded(table: string): string[] {
  return [
    `add counter netdev ${table} ${ICMP_ECHO}`,
    ...FAMILIES.map((f) => `add map netdev ${table} ${echoMap(f)} ${echoMapType(f)}`),
  ];
}

/** The ingress chain's rules that hand an unfragmented echo request for a VIP address to the address's chain. */
export function echoDispatchRules(): string[] {
  return [
    `meta pkttype host ip frag-off & 0x3fff == 0 icmp type echo-request ip daddr vmap @${echoMap(4)}`,
    // 58 (ICMPv6), not `ipv6-icmp`: nft resolves such names through /etc/protocols, which minimal images lack
    // (Debian's minbase: the Docker lab's nodes refused the whole table).
    `meta pkttype host ip6 nexthdr 58 icmpv6 type echo-request ip6 daddr vmap @${echoMap(6)}`,
  ];
}

/** The rule of one address's echo chain: the request turned into its reply, counted, sent back out. */
export function echoRule(addressHex: string, l: EchoLayout): string {
  const address = hexToAddress(addressHex);
  const turn =
    addressHex.length === 8
      ? `ip daddr set ip saddr ip saddr set ${address} ip ttl set 64 icmp type set echo-reply`
      : `ip6 daddr set ip6 saddr ip6 saddr set ${address} ip6 hoplimit set 64 icmpv6 type set echo-reply`;
  return (
    `${turn} ether daddr set ether saddr ether saddr set ${l.ifaceMac} ` +
    `counter name "${ICMP_ECHO}" fwd to ${JSON.stringify(l.iface)}`
  );
}

/** `family|hex` of an address, the form `current` and `desired` hold. */
export const echoAddress = (family: IpFamily, addressHex: string): string => `${family}|${addressHex}`;

/**
 * The ops that make the echo chains exactly `desired` (`family|hex`), given those in the kernel: a new address gets its
 * chain, rule and map element; a gone one loses its element, then its chain (a referenced chain cannot go).
 * `unmapped`: addresses of `current` whose map element is missing (deleted by hand): a desired one gets the element
 * back, a gone one loses only its chain.
 */
export function planEcho(
  table: string,
  current: ReadonlySet<string>,
  desired: ReadonlySet<string>,
  l: EchoLayout,
  unmapped: ReadonlySet<string> = new Set(),
): Op[] {
  const ops: Op[] = [];
  const nft = (text: string): void => {
    ops.push({ kind: 'nft', text });
  };
  for (const a of [...desired].sort()) {
    if (current.has(a) && !unmapped.has(a)) continue;
    const [f, hex] = a.split('|') as [string, string];
    if (!current.has(a)) {
      nft(`add chain netdev ${table} ${echoChain(hex)}`);
      nft(`add rule netdev ${table} ${echoChain(hex)} ${echoRule(hex, l)}`);
    }
    nft(
      `add element netdev ${table} ${echoMap(Number(f) as IpFamily)} { ${hexToAddress(hex)} : goto ${echoChain(hex)} }`,
    );
  }
  for (const a of [...current].sort()) {
    if (desired.has(a)) continue;
    const [f, hex] = a.split('|') as [string, string];
    if (!unmapped.has(a)) {
      nft(`delete element netdev ${table} ${echoMap(Number(f) as IpFamily)} { ${hexToAddress(hex)} }`);
    }
    nft(`delete chain netdev ${table} ${echoChain(hex)}`);
  }
  return ops;
}
