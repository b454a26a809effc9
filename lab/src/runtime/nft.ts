/**
 * nftables tables the lab itself puts in (netdev family):
 * - `l4f-observe-<node>`, in the router, on egress of its bridge port toward the node: remembers which client flows
 *   the router sends to that node, so `lab watch` can say which node carries which flow. It never changes a packet
 *   and sees the same whatever the node's data plane: on the node itself a tc program (bpf) takes the packet at
 *   ingress before any netfilter hook (tc runs first in __netif_receive_skb_core), so a table there saw nothing.
 * - `l4f-static`: static mode only (no agent): a stateless forwarder, jhash of the 4-tuple over the backends, the same
 *   on every node, so a flow that ECMP moves to another node still reaches the same backend. DSR as in
 *   platform-facts: `fwd` to the backend's address on the same segment; the backend holds the VIP on lo.
 */
import type { Topology } from '../topology/model.js';
import { attachmentOf, hostsOfKind } from '../topology/model.js';

export const OBSERVE_TABLE = 'l4f-observe';
export const STATIC_TABLE = 'l4f-static';
/** Longer than the flows' send interval (50 ms) by far, short enough that a moved flow leaves the old node's set soon. */
export const OBSERVE_TIMEOUT_S = 2;

/** The router's observe table for `node`. */
export function observeTableOf(node: string): string {
  return `${OBSERVE_TABLE}-${node}`;
}

/** The observe table `table` on egress of the router's port `port` (toward one node). */
export function observeRuleset(table: string, port: string): string {
  return [
    `table netdev ${table} {`,
    '  set flows4 {',
    '    type ipv4_addr . inet_proto . inet_service',
    `    flags dynamic,timeout; timeout ${OBSERVE_TIMEOUT_S}s; size 65536`,
    '  }',
    '  set flows6 {',
    '    type ipv6_addr . inet_proto . inet_service',
    `    flags dynamic,timeout; timeout ${OBSERVE_TIMEOUT_S}s; size 65536`,
    '  }',
    '  chain egress {',
    `    type filter hook egress device "${port}" priority -500; policy accept;`,
    '    ip daddr 198.51.100.0/24 meta l4proto { tcp, udp } update @flows4 { ip saddr . meta l4proto . th sport } counter',
    '    ip6 daddr 2001:db8::/32 meta l4proto { tcp, udp } update @flows6 { ip6 saddr . meta l4proto . th sport } counter',
    '  }',
    '}',
    '',
  ].join('\n');
}

/** Seed shared by all nodes: the same flow hashes to the same backend everywhere. */
export const STATIC_SEED = 0x4c34;

export function staticForwarderRuleset(topology: Topology, iface: string): string {
  const backends = hostsOfKind(topology, 'backend').map((b) => attachmentOf(topology, 'fabric', b.name));
  const n = backends.length;
  const v4 = backends.map((b, i) => `${i} : ${b.ipv4}`).join(', ');
  const v6 = backends.map((b, i) => `${i} : ${b.ipv6}`).join(', ');
  const vip4 = topology.vips.filter((v) => !v.address.includes(':')).map((v) => v.address);
  const vip6 = topology.vips.filter((v) => v.address.includes(':')).map((v) => v.address);
  const lines = [
    `table netdev ${STATIC_TABLE} {`,
    `  map backends4 { type mark : ipv4_addr; elements = { ${v4} } }`,
    `  map backends6 { type mark : ipv6_addr; elements = { ${v6} } }`,
    '  chain ingress {',
    `    type filter hook ingress device "${iface}" priority 0; policy accept;`,
  ];
  for (const proto of ['tcp', 'udp']) {
    lines.push(
      `    meta pkttype host ip daddr { ${vip4.join(', ')} } meta l4proto ${proto} meta mark set jhash ip saddr . ${proto} sport . ip daddr . ${proto} dport mod ${n} seed ${STATIC_SEED} fwd ip to meta mark map @backends4 device "${iface}"`,
    );
    if (vip6.length > 0) {
      lines.push(
        `    meta pkttype host ip6 daddr { ${vip6.join(', ')} } meta l4proto ${proto} meta mark set jhash ip6 saddr . ${proto} sport . ip6 daddr . ${proto} dport mod ${n} seed ${STATIC_SEED} fwd ip6 to meta mark map @backends6 device "${iface}"`,
      );
    }
  }
  lines.push('  }', '}', '');
  return lines.join('\n');
}

export interface ObservedFlow {
  readonly client: string;
  readonly protocol: string;
  readonly port: number;
  /** Seconds until the entry expires: the node that saw the flow last has the largest. */
  readonly expiresS: number;
}

/** Parses `nft -j list set netdev l4f-observe flowsN`. */
export function parseObservedSet(json: string): ObservedFlow[] {
  const doc = JSON.parse(json) as { nftables?: Record<string, unknown>[] };
  const out: ObservedFlow[] = [];
  for (const item of doc.nftables ?? []) {
    const set = item.set as { elem?: unknown[] } | undefined;
    for (const e of set?.elem ?? []) {
      const elem = (e as { elem?: { val?: unknown; expires?: number } }).elem;
      const val = (elem?.val ?? e) as { concat?: unknown[] };
      const [client, protocol, port] = val.concat ?? [];
      if (typeof client !== 'string') continue;
      out.push({
        client,
        protocol: String(protocol),
        port: Number(port),
        expiresS: elem?.expires ?? 0,
      });
    }
  }
  return out;
}
