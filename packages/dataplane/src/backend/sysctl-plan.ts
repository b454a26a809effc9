/**
 * The ARP and reverse-path settings a direct-server-return backend needs, as the smallest change to what the host
 * has. For each of these the kernel uses max(conf/all, conf/<interface>), so raising one value is enough and a
 * stricter value already in place is kept.
 */

export interface SysctlKeys {
  readonly arpIgnore: string;
  readonly arpAnnounce: string;
  readonly rpFilterAll: string;
  readonly rpFilterInterface: string;
}

/** Slash form: interface names may contain dots (eth0.100), which sysctl would read as separators. */
export function sysctlKeys(ifname: string): SysctlKeys {
  return {
    arpIgnore: 'net/ipv4/conf/all/arp_ignore',
    arpAnnounce: 'net/ipv4/conf/all/arp_announce',
    rpFilterAll: 'net/ipv4/conf/all/rp_filter',
    rpFilterInterface: `net/ipv4/conf/${ifname}/rp_filter`,
  };
}

/** arp_ignore 1: answer ARP only for addresses on the receiving interface, so the VIPs on `lo` stay silent. */
export const ARP_IGNORE = 1;
/** arp_announce 2: never use a VIP as the sender address of our own ARP requests (it would steal the VIP). */
export const ARP_ANNOUNCE = 2;
/**
 * rp_filter 2 (RFC 3704 loose): a decapsulated packet's source is the client, arriving on the interface that faces
 * the nodes; strict mode (1) drops it whenever the route back to the client leaves by another interface.
 */
export const RP_FILTER_LOOSE = 2;
const RP_FILTER_STRICT = 1;

/** The writes that bring `current` (key -> value) to what a backend needs; empty when it already does. */
export function planSysctls(keys: SysctlKeys, current: ReadonlyMap<string, string>): [string, string][] {
  const num = (key: string): number => Number(current.get(key) ?? '0');
  const writes: [string, string][] = [];
  if (num(keys.arpIgnore) < ARP_IGNORE) writes.push([keys.arpIgnore, String(ARP_IGNORE)]);
  if (num(keys.arpAnnounce) < ARP_ANNOUNCE) writes.push([keys.arpAnnounce, String(ARP_ANNOUNCE)]);
  if (Math.max(num(keys.rpFilterAll), num(keys.rpFilterInterface)) === RP_FILTER_STRICT) {
    writes.push([keys.rpFilterInterface, String(RP_FILTER_LOOSE)]);
  }
  return writes;
}
