import type { Forwarding, OnMemberDown, VipProfile } from '@l4fleet/config';
import type { HashMode, Protocol } from '@l4fleet/maglev';

export interface VipBackend {
  /** Fleet-wide backend name (the Maglev table was built over these names). */
  readonly name: string;
  readonly address: string;
  /** With direct server return the packet is not rewritten, so this must equal the VIP port; `nat` rewrites it. */
  readonly port: number;
  /** Backend MAC on the node's segment; when absent the kernel's neighbour table resolves it (ARP / ND). */
  readonly mac?: string;
  /**
   * Decided down by its health checks (it then owns no slot). With the VIP's `onMemberDown: reselect` its remembered
   * flows are placed by the table again; otherwise they stay on it (`keepsFlows`).
   */
  readonly down?: boolean;
}

/**
 * How a node hands a VIP's packets to its backends: the pool's `forwarding` (@l4fleet/config). `l2` in every
 * driver; `ipip`, `gre`, `gue` (encapsulated to the backend's address) in the bpf driver only; the format is
 * in docs/design/0007-bpf-dataplane.md. `nat` (conntrack DNAT to the backend's address and port, SNAT to the
 * node) in the nftables driver only; the bpf driver refuses it (docs/design/0012-nat-and-profiles.md).
 */
export type { Forwarding, OnMemberDown, VipProfile };

/**
 * Whether a backend's remembered flows stay on it (Maglev §3.3 connection tracking): always while it is in the
 * pool, except a `down` one of a `reselect` VIP. Every driver asks this one question.
 */
export function keepsFlows(t: Pick<VipTable, 'onMemberDown'>, b: Pick<VipBackend, 'down'>): boolean {
  return !(t.onMemberDown === 'reselect' && b.down === true);
}

/** One VIP's whole desired state. */
export interface VipTable {
  readonly vip: { readonly address: string; readonly port: number; readonly protocol: Protocol };
  readonly hash: HashMode;
  /** Fleet hash seed, an unsigned 32-bit integer. */
  readonly seed: number;
  /** The index space of `slots`. */
  readonly backends: readonly VipBackend[];
  /** @l4fleet/maglev buildTable() over `backends`; NO_BACKEND (-1) where no backend owns the slot. */
  readonly slots: Int32Array;
  /**
   * Second chance (docs/design/0011-second-chance.md; GLB Director's primary/secondary rows): the same length as
   * `slots`; per slot the index into `backends` of the slot's previous owner (its owner before the last table change
   * that moved the slot), or NO_BACKEND (-1) where there is none or it equals the current owner. `backends` holds
   * every backend referenced by `slots` or `previousSlots` (a previous owner may own no current slot). Absent: no
   * second chance for this VIP. Encapsulated forwarding only (the previous owner travels in the GUE header).
   */
  readonly previousSlots?: Int32Array;
  /** Default `l2`. */
  readonly forwarding?: Forwarding;
  /** The pool's `onMemberDown` (@l4fleet/config); default `keep`. */
  readonly onMemberDown?: OnMemberDown;
  /** `gue` only: the UDP destination port backends decapsulate on; default 6080. */
  readonly guePort?: number;
  /**
   * Flow timeouts (@l4fleet/config VipProfile): conntrack timeouts under `nat`, the flow-affinity timeout under
   * direct server return, socket timeouts in the proxy. Absent: the defaults of the VIP's protocol.
   */
  readonly profile?: VipProfile;
  /**
   * The client prefixes the VIP admits (@l4fleet/config sourceRanges: canonical `10.0.0.0/8`, `2001:db8::/32`, the
   * VIP's family). A TCP or UDP packet to the VIP from any other source is dropped and counted as `source`, before
   * flow affinity (so a removed prefix also stops open flows); ICMP errors about the VIP's flows are not filtered.
   * Absent: every source.
   */
  readonly sourceRanges?: readonly string[];
  /**
   * The VIP drains (@l4fleet/config vips[].state `draining`, F5's disabled virtual server): `slots` is the VIP's whole
   * table, and every driver refuses what would open a flow, counted as `noBackend`: a TCP SYN (without ACK) and a UDP
   * packet of a flow the node does not remember. A TCP segment of an open connection takes its remembered backend or,
   * on a node that does not remember it (ECMP moved the flow: a node added, drained or lost), the table's, where the
   * connection's socket is. Absent: false.
   */
  readonly draining?: boolean;
}

export type VipAction = 'added' | 'updated' | 'unchanged' | 'removed';

export interface VipApplyReport {
  /** `address:port/protocol`, IPv6 in brackets. */
  readonly vip: string;
  readonly action: VipAction;
  /** Slots whose backend changed (all slots for an added VIP or a new table size). */
  readonly slotsChanged: number;
  /** The VIP's rules were rewritten (new hash mode, seed or table size); its flows stay. */
  readonly rulesReplaced: boolean;
}

export interface ApplyResult {
  readonly vips: readonly VipApplyReport[];
  readonly slotsChanged: number;
  readonly backendsAdded: number;
  readonly backendsRemoved: number;
  /** The driver (re)created its whole kernel table: first start, or an incompatible layout. */
  readonly tableCreated: boolean;
  /** Kernel transactions (or proxy listener changes) this apply made; 0 when everything already matched. */
  readonly transactions: number;
  readonly durationMs: number;
  /**
   * The VIPs (labels) whose drift this call found and repaired, by whichever call finds it: the proxy reopens a lost
   * listener on every apply, not only on verify, and an apply's repair must count as drift too (the VIP took no
   * traffic while announced). The proxy sets it; the kernel drivers repair drift only in verify, whose `transactions`
   * say so, and leave it out.
   */
  readonly repaired?: readonly string[];
}

export interface TrafficCounter {
  readonly packets: number;
  readonly bytes: number;
}

/** `source`: a client outside the VIP's `sourceRanges` (every driver). */
export type DropReason = 'port' | 'no-backend' | 'source';
/**
 * Drops only the kernel drivers have: `fragment` (bpf and nftables: IPv4 fragments, and IPv6 packets whose next
 * header is a fragment header, to a VIP address: no ports to hash; another IPv6 extension header, hop-by-hop,
 * routing, destination options or AH, is not followed and counts as `port`, as node.bpf.c reads only the first next
 * header, and nft's ingress chain matches it: src/nft/ruleset.ts baseChainRules); bpf only: `too-big` (would exceed
 * the MTU once encapsulated), `no-source` (no node address of the family to encapsulate from), `encap-failed` (the
 * kernel refused to grow or write the packet).
 */
export type BpfDropReason = 'fragment' | 'too-big' | 'no-source' | 'encap-failed';

export interface DataPlaneCounters {
  /** Per VIP: what entered the VIP's forwarding path (proxy: datagrams / connections and bytes from clients). */
  readonly vips: readonly ({ readonly vip: string } & TrafficCounter)[];
  /** Per backend address, summed over the VIPs that use it. */
  readonly backends: readonly ({ readonly address: string; readonly mac?: string } & TrafficCounter)[];
  readonly drops: Readonly<Record<DropReason, TrafficCounter>> &
    Readonly<Partial<Record<BpfDropReason, TrafficCounter>>>;
  readonly flowTable: {
    /** Affinity entries now (nftables: live dynamic-map elements; proxy: open connections and UDP sessions). */
    readonly entries: number;
    /** Packets forwarded statelessly because the flow table was full. */
    readonly fullPackets: number;
  };
  /** bpf only: packets encapsulated (gue) with the slot's previous owner named (docs/design/0011-second-chance.md). */
  readonly secondChance?: { readonly tagged: TrafficCounter };
  /** bpf only: packets the XDP fast path forwarded itself (XDP_TX); the rest went through tc (docs/design/0007). */
  readonly xdp?: { readonly forwarded: TrafficCounter };
  /**
   * ICMP to VIP addresses (bpf and nftables; the proxy driver's addresses are the kernel's). `echoReplied`: echo
   * requests (ping) the node answered from the VIP. bpf only: `errorsForwarded`, "fragmentation needed" / "packet
   * too big" sent to the backend of the flow they are about; `errorsUnmatched`, such errors about no VIP flow, dropped
   * (docs/design/0007; nftables drops them as `port`).
   */
  readonly icmp?: {
    readonly echoReplied: TrafficCounter;
    readonly errorsForwarded?: TrafficCounter;
    readonly errorsUnmatched?: TrafficCounter;
  };
}

/** verify() before the first apply: nothing to compare with, nothing done. */
export function nothingVerified(): ApplyResult {
  return {
    vips: [],
    slotsChanged: 0,
    backendsAdded: 0,
    backendsRemoved: 0,
    tableCreated: false,
    transactions: 0,
    durationMs: 0,
  };
}

export interface DataPlane {
  /** Makes the forwarding state exactly `desired` (the whole set); the driver computes and applies the delta. */
  apply(desired: readonly VipTable[]): Promise<ApplyResult>;
  counters(): Promise<DataPlaneCounters>;
  /**
   * Reads the forwarding state back from the kernel and repairs whatever differs from the last apply (drift: a table,
   * map element, chain, tc filter or map entry changed or deleted by hand). The result is an apply's: `transactions`
   * 0 when nothing differed. Before the first apply, it does nothing. Serialised with apply().
   */
  verify(): Promise<ApplyResult>;
  /** Stops the driver. nftables: the kernel state stays (forwarding survives a restart) unless asked. */
  close(opts?: { readonly removeState?: boolean }): Promise<void>;
}
