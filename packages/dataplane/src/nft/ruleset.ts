/**
 * The nft text the driver loads. One table of the netdev family owned by l4fleet:
 *
 *   ingress (hook on the node's interface): untagged or priority-tagged (VLAN id 0) frames addressed to this host
 *     (`meta pkttype host`: a bridge floods frames for a downed port, and without the match every node would forward
 *     them) whose daddr . l4proto . dport is a VIP jump to that VIP's chain: unfragmented IPv4, IPv6 with TCP / UDP right after
 *     its header, as the bpf driver reads them (baseChainRules); anything else to a VIP address is dropped
 *     and counted (fragments apart, the rest port filtering), but for pings, which the VIP address's echo chain
 *     answers (echo.ts); everything else passes untouched.
 *   <vip> chain: a client outside the VIP's sourceRanges is dropped and counted first, before flow affinity, so
 *     removing a prefix also stops the flows open from it (source-ranges.ts). Then an existing flow keeps its
 *     backend (Maglev §3.3 connection tracking, here an nft dynamic map keyed by the 5-tuple, value = backend
 *     id, refreshed on every packet, expiring when idle) as long as that backend is still in the VIP's pool; a
 *     new flow hashes to a slot with the kernel's jhash, the slot map gives its backend id, the flow is
 *     remembered and forwarded. The remembering and the forwarding are separate rules, so a full flow map
 *     degrades to stateless forwarding, never to drops.
 *   forward: backend id -> neighbour (kernel ARP/ND resolution, `fwd ip to`) or a static MAC, out of the
 *     same interface, the IP packet unchanged but for the TTL: L2 direct server return.
 */
import type { IpFamily, Protocol } from '@l4fleet/maglev';
import { echoDeclarations, echoDispatchRules } from './echo.js';
import {
  BACKEND_COUNTERS,
  BACKEND_ID_BIT,
  BASE_CHAIN,
  backendsMap,
  DROP_FRAGMENT,
  DROP_NO_BACKEND,
  DROP_PORT,
  DROP_SOURCE,
  exactFlowsSet,
  FLOW_TABLE_FULL,
  FORWARD_CHAIN,
  flowsMap,
  LAYOUT_VERSION,
  liveSet,
  MACS,
  OVERLAY_NO_BACKEND,
  overlayMap,
  secondFlowsMap,
  slotsMap,
  vipAddressesSet,
  vipsMap,
} from './names.js';
import { type SourceFilter, sourceRule } from './source-ranges.js';

export interface Layout {
  readonly table: string;
  readonly iface: string;
  /** The interface's own MAC: the source of frames forwarded to a backend with a static MAC. */
  readonly ifaceMac: string;
  readonly flowTimeoutTcpS: number;
  readonly flowTimeoutUdpS: number;
  readonly flowTableSize: number;
}

/** Stored as the table comment: a table whose layout differs is replaced, one that matches is kept. */
export function layoutSignature(l: Layout): string {
  return (
    `l4fleet layout=${LAYOUT_VERSION} dev=${l.iface} mac=${l.ifaceMac} ` +
    `tcp=${l.flowTimeoutTcpS} udp=${l.flowTimeoutUdpS} flows=${l.flowTableSize}`
  );
}

const FAMILIES: readonly IpFamily[] = [4, 6];
const PROTOCOLS: readonly Protocol[] = ['tcp', 'udp'];
const l3 = (f: IpFamily): string => (f === 4 ? 'ip' : 'ip6');
const addrType = (f: IpFamily): string => (f === 4 ? 'ipv4_addr' : 'ipv6_addr');

/**
 * The table's own counters. DROP_SOURCE and DROP_FRAGMENT came later: a table written before them lacks them, and the
 * plan adds them once (plan.ts: KernelState.dropSourceCounter; DROP_FRAGMENT with the ingress chain that counts into
 * it) rather than laying the table out anew, which would empty its flow maps.
 */
export const BASE_COUNTERS = [DROP_PORT, DROP_NO_BACKEND, FLOW_TABLE_FULL, DROP_SOURCE, DROP_FRAGMENT] as const;

/** IPv6's next header number of the fragment header (RFC 8200 §4.5); a number, as nft would look `ipv6-frag` up. */
const IPV6_FRAGMENT_HEADER = 44;

/**
 * A frame tagged with a VLAN id: the kernel moved its 802.1Q / 802.1ad tag into the skb before this hook (skb_vlan_untag,
 * or the NIC's rx VLAN offload), so `ip daddr` and the vmaps see the packet inside, but the frame belongs to that VLAN's
 * device, whose stack takes it after this hook; fwd would send it out of this interface still tagged. nft reads the
 * moved tag back in place (nft_payload_copy_vlan: the tag's type at byte 12, the TCI at 14); `vlan id` would check
 * 802.1Q alone. VLAN id 0 is an 802.1p priority tag: the kernel delivers that frame here as an untagged one, so it is
 * served, its tag kept by fwd. As the bpf driver (node.bpf.c l4f_node).
 */
const VLAN_TAGGED = 'ether type { 8021q, 8021ad } @ll,112,16 & 0x0fff != 0';

/**
 * The ingress chain's rules: a frame of a VLAN left to its VLAN device, VIP traffic to its VIP's chain, then pings to VIP addresses answered (echo.ts), then
 * fragments and the port filter. Also what a table written before the echo maps gets once (plan.ts), in the same
 * order.
 *
 * VIP traffic is what the bpf driver takes for it (node.bpf.c ingress4 / ingress6), so a fleet mixing both drivers
 * sends a packet to the same backend, or drops it, whichever node ECMP picks: an unfragmented IPv4 packet (nft reads
 * the ports of a first fragment, and would forward it alone, its later fragments dropped), an IPv6 packet with TCP /
 * UDP right after its header: `ip6 nexthdr` in the key, not `meta l4proto`, which the netdev hook finds behind
 * hop-by-hop, routing, destination options, AH and fragment headers (ipv6_find_hdr). What is left meets the drops
 * below, counted as bpf counts it: an IPv4 fragment, an IPv6 packet whose next header is a fragment header
 * `drop_fragment`, any other `drop_port`.
 *
 * Two rules more than the chain had before the fragment rules, and one more (the VLAN rule) than it had with them: a
 * table written by either version is read back with another number of ingress rules (state.ts baseChainsDiffering),
 * and the plan writes its chain again, flow maps kept.
 */
export function baseChainRules(): string[] {
  return [
    `${VLAN_TAGGED} accept`,
    `meta pkttype host ip frag-off & 0x3fff == 0 ip daddr . meta l4proto . th dport vmap @${vipsMap(4)}`,
    `meta pkttype host ip6 daddr . ip6 nexthdr . th dport vmap @${vipsMap(6)}`,
    ...echoDispatchRules(),
    `meta pkttype host ip frag-off & 0x3fff != 0 ip daddr @${vipAddressesSet(4)} counter name "${DROP_FRAGMENT}" drop`,
    `meta pkttype host ip6 nexthdr ${IPV6_FRAGMENT_HEADER} ip6 daddr @${vipAddressesSet(6)} ` +
      `counter name "${DROP_FRAGMENT}" drop`,
    ...FAMILIES.map((f) => `meta pkttype host ${l3(f)} daddr @${vipAddressesSet(f)} counter name "${DROP_PORT}" drop`),
  ];
}

/** The ingress chain's hook on the node's interface. */
export function baseChainHook(l: Pick<Layout, 'iface'>): string {
  return `type filter hook ingress device ${JSON.stringify(l.iface)} priority 0; policy accept;`;
}

/** The whole table, empty of VIPs and backends. */
export function baseTable(l: Layout): string {
  const lines: string[] = [`table netdev ${l.table} {`, `  comment "${layoutSignature(l)}"`];
  for (const c of BASE_COUNTERS) lines.push(`  counter ${c} { }`);
  for (const f of FAMILIES) {
    lines.push(`  map ${vipsMap(f)} { type ${addrType(f)} . inet_proto . inet_service : verdict; }`);
    lines.push(`  set ${vipAddressesSet(f)} { type ${addrType(f)}; }`);
    lines.push(`  map ${backendsMap(f)} { type mark : ${addrType(f)}; }`);
    for (const p of PROTOCOLS) {
      const timeout = p === 'tcp' ? l.flowTimeoutTcpS : l.flowTimeoutUdpS;
      const tuple = `${addrType(f)} . inet_service . ${addrType(f)} . inet_service`;
      const dynamic = `flags dynamic,timeout; timeout ${timeout}s; size ${l.flowTableSize};`;
      // IPv6: keyed by a 32-bit hash of the 5-tuple, checked against the exact set (see FLOW_KEY_SEEDS).
      lines.push(`  map ${flowsMap(f, p)} { type ${f === 4 ? tuple : 'mark'} : mark; ${dynamic} }`);
      if (f === 6) {
        lines.push(`  map ${secondFlowsMap(p)} { type mark : mark; ${dynamic} }`);
        lines.push(`  set ${exactFlowsSet(p)} { type ${tuple} . mark; ${dynamic} }`);
      }
    }
  }
  lines.push(`  map ${MACS} { type mark : ether_addr; }`);
  lines.push(`  map ${BACKEND_COUNTERS} { type mark : counter; }`);
  lines.push(...echoDeclarations());
  lines.push(`  chain ${BASE_CHAIN} {`, `    ${baseChainHook(l)}`);
  for (const r of baseChainRules()) lines.push(`    ${r}`);
  lines.push('  }');
  lines.push(`  chain ${FORWARD_CHAIN} {`, ...forwardChainRules(l).map((r) => `    ${r}`), '  }', '}');
  return `${lines.join('\n')}\n`;
}

/** The forward chain's rules (every VIP chain ends there); how many does not depend on the layout's values. */
export function forwardChainRules(l: Pick<Layout, 'iface' | 'ifaceMac'>): string[] {
  const dev = JSON.stringify(l.iface);
  return [
    `counter name meta mark map @${BACKEND_COUNTERS}`,
    // A static MAC: rewrite both addresses (the source must be ours, or the switch learns the client's
    // router on our port). A lookup miss ends this rule and the next ones resolve the neighbour.
    `ether daddr set meta mark map @${MACS} ether saddr set ${l.ifaceMac} fwd to ${dev}`,
    ...FAMILIES.map((f) => `meta protocol ${l3(f)} fwd ${l3(f)} to meta mark map @${backendsMap(f)} device ${dev}`),
    `counter name "${DROP_NO_BACKEND}" drop`,
  ];
}

export interface VipShape {
  readonly key: string;
  readonly family: IpFamily;
  readonly protocol: Protocol;
  readonly hash: '5-tuple' | 'source-ip';
  readonly seed: number;
  readonly size: number;
  /**
   * The VIP profile's idle timeout in seconds, when it differs from the layout's default for the protocol: the flow
   * affinity entries of this VIP expire after it (design note 0012). Absent: the layout's flowTimeout*S.
   */
  readonly idleTimeoutS?: number;
  /** `onMemberDown: reselect`: a remembered flow whose backend is not live is forgotten, not left to idle out. */
  readonly reselect?: boolean;
  /** The VIP's sourceRanges; absent: every source. */
  readonly source?: SourceFilter;
  /** The VIP drains (VipTable.draining): no SYN, no UDP flow the node does not remember. */
  readonly draining?: boolean;
}

/** Stored as the comment of the rule counting the VIP: rules are rewritten only when this changes. */
export function vipSignature(v: VipShape): string {
  // The idle timeout only when it is not the default, so tables written before profiles keep their signature.
  const idle = v.idleTimeoutS === undefined ? '' : ` idle=${v.idleTimeoutS}`;
  // `syn=table`: TCP rules that place every SYN by the table (see vipRules); a TCP VIP whose rules lack it is
  // rewritten once, so an upgraded node gets them without a new layout (which would drop its flow maps).
  const syn = v.protocol === 'tcp' ? ' syn=table' : '';
  const reselect = v.reselect ? ' reselect' : '';
  // The ranges' digest only when there are ranges: a VIP without them keeps the signature older tables have.
  const src = v.source === undefined ? '' : ` src=${v.source.digest}`;
  const draining = v.draining ? ' draining' : '';
  return `l4fleet vip hash=${v.hash} seed=${v.seed} size=${v.size}${idle}${syn}${reselect}${src}${draining}`;
}

/**
 * IPv6 flows are remembered under 32-bit hashes of their 5-tuple: nft 1.0.6 cannot build a dynamic-map
 * update whose key is wider than 16 bytes (it aborts in netlink_linearize.c), and the IPv6 5-tuple is 40.
 * A dynamic *set* has no such limit, so the exact 5-tuple with its backend id goes in a set beside the
 * maps, and a remembered backend is used only when that exact pair is there: a flow never takes another
 * flow's backend. A flow is remembered under two hashes (two maps, independent seeds), so a flow whose
 * first hash collides with a live flow's (about 1 in 65,000 new flows with 65,536 live entries) is found
 * under its second; only a flow colliding in both (~1 in 4 billion) is forwarded by the table on every
 * packet, as if the flow map were full. The seeds only have to be fixed, so a restarted agent finds its
 * entries again.
 */
export const FLOW_KEY_SEEDS = [0x9e37_79b9, 0x85eb_ca6b] as const;
const FLOW_KEY_MOD = 0xffff_ffff;

/** A TCP segment opening a connection (SYN without ACK), and everything else. */
const SYN_ONLY = 'tcp flags & (syn | ack) == syn';
const NOT_SYN = 'tcp flags & (syn | ack) != syn';

/** The VIP chain's rules, in order. */
export function vipRules(v: VipShape, l: Layout): string[] {
  const ip = l3(v.family);
  const tuple = `${ip} saddr . ${v.protocol} sport . ${ip} daddr . ${v.protocol} dport`;
  const hashed = v.hash === '5-tuple' ? tuple : `${ip} saddr`;
  const timeout = `timeout ${v.idleTimeoutS ?? (v.protocol === 'tcp' ? l.flowTimeoutTcpS : l.flowTimeoutUdpS)}s`;
  const live = `meta mark @${liveSet(v.key)}`;
  const bit = `0x${BACKEND_ID_BIT.toString(16)}`;
  // Known flow: restart the idle timers. New flow: `add`, which leaves an existing entry alone, so an
  // entry whose backend left the pool is not kept alive by the flow it no longer serves: it idles out
  // and the flow is remembered again with its new backend (kernel dynset `update` never replaces data).
  // A TCP SYN without ACK opens a new connection: it never follows a remembered entry, and replaces it. A client
  // reusing the source port of an earlier connection would otherwise reach that connection's backend, also one that
  // failed its health checks (it stays in the live set: health decides only the slots). Maglev §3.3 and Katran place
  // a new connection by the table the same way; the bpf driver does it in node-core.h.
  const syn = v.protocol === 'tcp' ? SYN_ONLY : '';
  const notSyn = v.protocol === 'tcp' ? `${NOT_SYN} ` : '';
  let known: string[];
  let remember: string;
  let forget: string[];
  let stale: string[];
  if (v.family === 4) {
    const flows = `@${flowsMap(4, v.protocol)}`;
    const refresh = `update ${flows} { ${tuple} ${timeout} : meta mark }`;
    known = [`${notSyn}meta mark set ${tuple} map ${flows} ${live} ${refresh} goto ${FORWARD_CHAIN}`];
    remember = `add ${flows} { ${tuple} ${timeout} : meta mark }`;
    // A map's delete needs a data register in the kernel (nft_dynset_init), though the data is not compared.
    forget = [`delete ${flows} { ${tuple} : meta mark }`];
    // Past the known rule, an entry found here names a backend not live for the VIP.
    stale = [`${notSyn}meta mark set ${tuple} map ${flows} ${forget.join(' ')}`];
  } else {
    const exact = `@${exactFlowsSet(v.protocol)}`;
    const touchExact = `update ${exact} { ${tuple} . meta mark ${timeout} }`;
    const hints = FLOW_KEY_SEEDS.map((seed, i) => ({
      key: `jhash ${tuple} mod ${FLOW_KEY_MOD} seed 0x${seed.toString(16)}`,
      map: `@${i === 0 ? flowsMap(6, v.protocol) : secondFlowsMap(v.protocol)}`,
    }));
    // A map lookup keyed by jhash fails nft's type check; the hash goes through meta mark instead.
    known = hints.flatMap((h) => [
      `${notSyn}meta mark set ${h.key}`,
      `${notSyn}meta mark set meta mark map ${h.map} ${live} ${tuple} . meta mark ${exact} ` +
        `update ${h.map} { ${h.key} ${timeout} : meta mark } ${touchExact} goto ${FORWARD_CHAIN}`,
    ]);
    remember = `${hints.map((h) => `add ${h.map} { ${h.key} ${timeout} : meta mark }`).join(' ')} ${touchExact}`;
    // The old exact entry (tuple . old backend) is left to idle out: without its hint it is never matched.
    forget = hints.map((h) => `delete ${h.map} { ${h.key} : meta mark }`);
    // Past the known rules, a hint whose exact pair is there names a backend not live for the VIP (a hint without
    // its pair is another flow's: it stays).
    stale = hints.flatMap((h) => [
      `${notSyn}meta mark set ${h.key}`,
      `${notSyn}meta mark set meta mark map ${h.map} ${tuple} . meta mark ${exact} delete ${h.map} { ${h.key} : meta mark }`,
    ]);
  }
  return [
    // Before the VIP's counter (which counts what enters its forwarding path) and before the known-flow rules.
    ...(v.source === undefined ? [] : [sourceRule(v.family, v.source, DROP_SOURCE)]),
    `counter name "${v.key}" comment "${vipSignature(v)}"`,
    ...known,
    // `reselect`: the entry of a flow whose backend was decided down goes, so `add` below remembers the table's
    // backend and the flow stays there when the old one comes back (without it the entry idles out first).
    ...(v.reselect ? stale : []),
    // A draining VIP keeps its table but opens no flow: past the known-flow rules only a SYN, a TCP segment of a
    // connection this node does not remember (ECMP moved it here: the table below sends it to its socket's backend,
    // as every node's table would) and a UDP packet of a flow it does not remember are left; the first and the last
    // are refused.
    ...(v.draining ? [`${syn} counter name "${DROP_NO_BACKEND}" drop`.trimStart()] : []),
    `meta mark set jhash ${hashed} mod ${v.size} seed ${v.seed}`,
    // The overlay holds recent changes (a miss ends the rule, leaving the slot number in meta mark)...
    `meta mark set meta mark map @${overlayMap(v.key)}`,
    // ... then the slot map, for a slot the overlay did not have.
    `meta mark & ${bit} == 0 meta mark set meta mark map @${slotsMap(v.key)}`,
    // Still a slot number (no backend in either map), or the overlay says "no backend".
    `meta mark & ${bit} == 0 counter name "${DROP_NO_BACKEND}" drop`,
    `meta mark 0x${OVERLAY_NO_BACKEND.toString(16)} counter name "${DROP_NO_BACKEND}" drop`,
    // A SYN's old entry goes first: `add` below would keep it. The delete leaves meta mark (the backend) alone.
    ...(syn === '' ? [] : [`${syn} ${forget.join(' ')}`]),
    `${remember} goto ${FORWARD_CHAIN}`,
    `counter name "${FLOW_TABLE_FULL}" goto ${FORWARD_CHAIN}`,
  ];
}
