/**
 * The nft text of `forwarding: nat` (design note 0012): a second table, of the `inet` family, beside the netdev one.
 * NAT needs connection tracking, which the IP stack has and the netdev ingress hook does not. The netdev table does not
 * know NAT VIPs, so their packets pass it into the IP stack; an address is served by NAT VIPs or by direct-return VIPs,
 * never both (the netdev table would drop the other's ports).
 *
 *   source (filter, raw: before conntrack): every packet to a NAT VIP with sourceRanges jumps to the VIP's source
 *     chain, which drops and counts a client outside the ranges. Every packet, not only a connection's first (which
 *     alone sees the nat chains), so removing a prefix also stops the connections open from it; and before conntrack,
 *     so a refused client leaves no conntrack entry behind. ICMP errors never match (no VIP port to look up).
 *   served (filter, raw: before conntrack): every TCP or UDP packet to a NAT address whose address . protocol . port
 *     is not a served NAT VIP (the natserved set) is dropped and counted as a port drop. Every packet: the nat chain's
 *     port drop below sees only a connection's first, and conntrack would go on translating the established
 *     connections of a VIP disabled or removed while its address stays served by others. ICMP passes (errors about
 *     open connections).
 *   prerouting (nat, dstnat): the first packet of a connection to a NAT VIP jumps to the VIP's chain; anything else to
 *     a NAT address is dropped and counted (port filtering). Later packets never see a nat chain: conntrack rewrites
 *     them, so a connection keeps its member whatever the table does later (the affinity of Maglev §3.3).
 *   <vip> chain: counts the connection; drops or resets a TCP segment that is not a SYN (the state of its connection
 *     expired, or it was made on another node); drops every new connection of a draining VIP; attaches the profile's conntrack timeouts; hashes the 5-tuple (or
 *     the source) with the same jhash as the netdev chain into the VIP's slot map, whose values are the member's
 *     address and port: DNAT with port translation. A slot without a member drops.
 *   postrouting (nat, srcnat): connections DNATed from a NAT address are masqueraded to the outgoing interface's
 *     address, so the member answers the node and conntrack turns the reply back into VIP -> client.
 *   forward (filter): a packet still addressed to a NAT address after prerouting (not NATed: no member, a TCP
 *     segment conntrack calls invalid) is dropped, not routed back to the router.
 */
import type { IpFamily, Protocol } from '@l4fleet/maglev';
import type { ResolvedProfile } from '../vip-profile.js';
import { type SourceFilter, sourceRule } from './source-ranges.js';

/** Bumped when the NAT table's shape changes: an older one is then replaced once. */
export const NAT_LAYOUT_VERSION = 1;
export const NAT_PREROUTING = 'prerouting';
export const NAT_POSTROUTING = 'postrouting';
export const NAT_FORWARD = 'forward';
export const NAT_DROP_PORT = 'nat_drop_port';
export const NAT_DROP_NO_BACKEND = 'nat_drop_no_backend';
export const NAT_DROP_EXPIRED = 'nat_drop_expired';
export const NAT_DROP_UNMATCHED = 'nat_drop_unmatched';
export const NAT_SOURCE = 'source';
export const NAT_DROP_SOURCE = 'nat_drop_source';
export const NAT_SERVED = 'served';
/** The served NAT VIPs (address . protocol . port): every packet to a NAT address and another port drops. */
export const natServedSet = (family: IpFamily): string => `natserved${family}`;
/** VIP (address . protocol . port) -> jump to its source chain; only VIPs with sourceRanges have an element. */
export const natSourceMap = (family: IpFamily): string => `natsrc${family}`;
export const natSourceChain = (vipKey: string): string => `${vipKey}_src`;
export const natVipsMap = (family: IpFamily): string => `natvips${family}`;
export const natAddressesSet = (family: IpFamily): string => `nataddrs${family}`;
export const natSlotsMap = (vipKey: string): string => `${vipKey}_slots`;
/** Elements per `add element` statement when a slot map is filled (a 65,537-slot table is 17 statements). */
export const NAT_ELEMENTS_PER_STATEMENT = 4_096;

const l3 = (f: IpFamily): string => (f === 4 ? 'ip' : 'ip6');
const addrType = (f: IpFamily): string => (f === 4 ? 'ipv4_addr' : 'ipv6_addr');
const FAMILIES: readonly IpFamily[] = [4, 6];

export function natLayoutSignature(): string {
  return `l4fleet nat layout=${NAT_LAYOUT_VERSION}`;
}

/**
 * The conntrack timeout object of a profile, named by its values: a changed profile is a new object (the kernel
 * cannot change one in place), and connections made under the old one keep it (design note 0012).
 */
export function timeoutName(family: IpFamily, protocol: Protocol, p: ResolvedProfile): string {
  return protocol === 'tcp'
    ? `to_tcp${family}_${p.idleTimeoutS}_${p.tcpHandshakeTimeoutS}_${p.tcpCloseTimeoutS}`
    : `to_udp${family}_${p.idleTimeoutS}`;
}

/**
 * The object's policy: established = idle; SYN sent / received = handshake; every closing state (FIN or RST seen)
 * = close. States not named keep the kernel's defaults: `unack` (300 s) and `retrans` (300 s) cap the timeout while
 * data is unacknowledged. UDP: unreplied and replied (the kernel's "stream") = idle.
 */
export function timeoutObject(family: IpFamily, protocol: Protocol, p: ResolvedProfile): string {
  const policy =
    protocol === 'tcp'
      ? `established: ${p.idleTimeoutS}, syn_sent: ${p.tcpHandshakeTimeoutS}, syn_recv: ${p.tcpHandshakeTimeoutS}, ` +
        ['fin_wait', 'close_wait', 'last_ack', 'time_wait', 'close']
          .map((s) => `${s}: ${p.tcpCloseTimeoutS}`)
          .join(', ')
      : `unreplied: ${p.idleTimeoutS}, replied: ${p.idleTimeoutS}`;
  return `{ protocol ${protocol}; l3proto ${l3(family)}; policy = { ${policy} }; }`;
}

/** The source filter's counter, maps and base chain: lines of a `table inet T { }` block. */
function sourceDeclarations(): string[] {
  return [
    `  counter ${NAT_DROP_SOURCE} { }`,
    ...FAMILIES.map((f) => `  map ${natSourceMap(f)} { type ${addrType(f)} . inet_proto . inet_service : verdict; }`),
    `  chain ${NAT_SOURCE} {`,
    '    type filter hook prerouting priority raw; policy accept;',
    ...FAMILIES.map((f) => `    ${l3(f)} daddr . meta l4proto . th dport vmap @${natSourceMap(f)}`),
    '  }',
  ];
}

/** The served filter's sets and base chain: lines of a `table inet T { }` block (its counter and address sets exist). */
function servedDeclarations(): string[] {
  return [
    ...FAMILIES.map((f) => `  set ${natServedSet(f)} { type ${addrType(f)} . inet_proto . inet_service; }`),
    `  chain ${NAT_SERVED} {`,
    '    type filter hook prerouting priority raw; policy accept;',
    ...FAMILIES.map(
      (f) =>
        `    ${l3(f)} daddr @${natAddressesSet(f)} meta l4proto { tcp, udp } ` +
        `${l3(f)} daddr . meta l4proto . th dport != @${natServedSet(f)} counter name "${NAT_DROP_PORT}" drop`,
    ),
    '  }',
  ];
}

/**
 * The served filter added to a NAT table written before it existed (no `served` chain), beside what is there: a new
 * layout would delete the conntrack timeout objects open connections use. The plan then adds every VIP's element.
 */
export function natServedUpgrade(table: string): string {
  return `${[`table inet ${table} {`, ...servedDeclarations(), '}'].join('\n')}\n`;
}

/**
 * The source filter added to a NAT table written before sourceRanges existed (it has no `source` chain): added
 * beside what is there, not by a new layout, which would delete the conntrack timeout objects open connections use.
 */
export function natSourceUpgrade(table: string): string {
  return `${[`table inet ${table} {`, ...sourceDeclarations(), '}'].join('\n')}\n`;
}

/** The NAT table without VIPs. */
export function natBaseTable(table: string): string {
  const lines = [`table inet ${table} {`, `  comment "${natLayoutSignature()}"`];
  for (const c of [NAT_DROP_PORT, NAT_DROP_NO_BACKEND, NAT_DROP_EXPIRED, NAT_DROP_UNMATCHED]) {
    lines.push(`  counter ${c} { }`);
  }
  for (const f of FAMILIES) {
    lines.push(`  map ${natVipsMap(f)} { type ${addrType(f)} . inet_proto . inet_service : verdict; }`);
    lines.push(`  set ${natAddressesSet(f)} { type ${addrType(f)}; }`);
  }
  lines.push(...sourceDeclarations());
  lines.push(...servedDeclarations());
  lines.push(`  chain ${NAT_PREROUTING} {`, '    type nat hook prerouting priority dstnat; policy accept;');
  for (const f of FAMILIES) lines.push(`    ${l3(f)} daddr . meta l4proto . th dport vmap @${natVipsMap(f)}`);
  for (const f of FAMILIES) {
    lines.push(`    ${l3(f)} daddr @${natAddressesSet(f)} counter name "${NAT_DROP_PORT}" drop`);
  }
  lines.push('  }', `  chain ${NAT_POSTROUTING} {`, '    type nat hook postrouting priority srcnat; policy accept;');
  for (const f of FAMILIES)
    lines.push(`    ct status dnat ct original ${l3(f)} daddr @${natAddressesSet(f)} masquerade`);
  lines.push('  }', `  chain ${NAT_FORWARD} {`, '    type filter hook forward priority filter; policy accept;');
  for (const f of FAMILIES) {
    lines.push(`    ${l3(f)} daddr @${natAddressesSet(f)} counter name "${NAT_DROP_UNMATCHED}" drop`);
  }
  lines.push('  }', '}');
  return `${lines.join('\n')}\n`;
}

export interface NatVipShape {
  readonly key: string;
  readonly family: IpFamily;
  readonly protocol: Protocol;
  readonly hash: '5-tuple' | 'source-ip';
  readonly seed: number;
  readonly size: number;
  readonly timeout: string;
  readonly onTimeout: 'drop' | 'reset';
  /** The VIP drains (VipTable.draining): no new connection. */
  readonly draining?: boolean;
}

/** Stored as the first rule's comment: the rules are rewritten only when this changes. */
export function natVipSignature(v: NatVipShape): string {
  const draining = v.draining ? ' draining' : '';
  return `l4fleet nat vip hash=${v.hash} seed=${v.seed} size=${v.size} timeout=${v.timeout} on=${v.onTimeout}${draining}`;
}

/** The VIP chain's rules, in order (only a connection's first packet runs them). */
export function natVipRules(v: NatVipShape): string[] {
  const ip = l3(v.family);
  const tuple = `${ip} saddr . ${v.protocol} sport . ${ip} daddr . ${v.protocol} dport`;
  const hashed = v.hash === '5-tuple' ? tuple : `${ip} saddr`;
  const rules = [`counter name "${v.key}" comment "${natVipSignature(v)}"`];
  if (v.protocol === 'tcp') {
    // A new connection that does not start with a SYN: its state expired (or it began on another node). Without this
    // rule conntrack would pick it up mid-stream (nf_conntrack_tcp_loose) and the expired flow would carry on.
    const verdict = v.onTimeout === 'reset' ? 'reject with tcp reset' : 'drop';
    rules.push(`tcp flags & (syn | ack) != syn counter name "${NAT_DROP_EXPIRED}" ${verdict}`);
  }
  // A draining VIP opens no connection. Under NAT a connection lives in one node's conntrack, so a flow ECMP moves
  // to another node ends there in any state (the rule above): nothing a draining table could keep.
  if (v.draining) rules.push(`counter name "${NAT_DROP_NO_BACKEND}" drop`);
  rules.push(
    `ct timeout set "${v.timeout}"`,
    // The same hash as the netdev chain (ruleset.ts): every node, and `l4fleet explain`, picks the same member.
    `meta mark set jhash ${hashed} mod ${v.size} seed ${v.seed}`,
    `meta l4proto ${v.protocol} dnat ${ip} to meta mark map @${natSlotsMap(v.key)}`,
    `counter name "${NAT_DROP_NO_BACKEND}" drop`,
  );
  return rules;
}

/** Stored as the source rule's comment: the source chain is rewritten only when this changes. */
export function natSourceSignature(f: SourceFilter): string {
  return `l4fleet nat src=${f.digest}`;
}

/** The one rule of a VIP's source chain. */
export function natSourceRule(family: IpFamily, f: SourceFilter): string {
  return `${sourceRule(family, f, NAT_DROP_SOURCE)} comment "${natSourceSignature(f)}"`;
}
