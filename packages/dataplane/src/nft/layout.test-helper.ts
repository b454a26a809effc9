/** For this package's tests only (excluded from the build): the nft table layout the plan tests render against. */
import type { Layout } from './ruleset.js';

export const TEST_LAYOUT: Layout = {
  table: 'l4t',
  iface: 'eth0',
  ifaceMac: '02:00:00:00:00:01',
  flowTimeoutTcpS: 300,
  flowTimeoutUdpS: 30,
  flowTableSize: 1024,
};

/**
 * The table's own chains (ingress, forward) as nft 1.0.6 lists them, written by the driver in a namespace with
 * TEST_LAYOUT's interface and MAC: a rule of one replaced by hand (`nft replace rule`) keeps their number of rules.
 */
export const LISTED_INGRESS: readonly string[] = [
  'ether type { 8021q, 8021ad } @ll,112,16 & 0xfff != 0x0 accept',
  'meta pkttype host ip frag-off & 16383 == 0 ip daddr . meta l4proto . th dport vmap @vips4',
  'meta pkttype host ip6 daddr . ip6 nexthdr . th dport vmap @vips6',
  'meta pkttype host ip frag-off & 16383 == 0 icmp type echo-request ip daddr vmap @echo4',
  'meta pkttype host ip6 nexthdr ipv6-icmp icmpv6 type echo-request ip6 daddr vmap @echo6',
  'meta pkttype host ip frag-off & 16383 != 0 ip daddr @vipaddrs4 counter name "drop_fragment" drop',
  'meta pkttype host ip6 nexthdr ipv6-frag ip6 daddr @vipaddrs6 counter name "drop_fragment" drop',
  'meta pkttype host ip daddr @vipaddrs4 counter name "drop_port" drop',
  'meta pkttype host ip6 daddr @vipaddrs6 counter name "drop_port" drop',
];
export const LISTED_FORWARD: readonly string[] = [
  'counter name meta mark map @backend_counters',
  'ether daddr set meta mark map @macs ether saddr set 02:00:00:00:00:01 fwd to "eth0"',
  'meta protocol ip fwd ip to meta mark map @backends4 device "eth0"',
  'meta protocol ip6 fwd ip6 to meta mark map @backends6 device "eth0"',
  'counter name "drop_no_backend" drop',
];
