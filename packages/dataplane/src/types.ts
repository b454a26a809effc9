import type { HashMode, Protocol } from '@l4fleet/maglev';

export interface VipBackend {
  /** Fleet-wide backend name (the Maglev table was built over these names). */
  readonly name: string;
  readonly address: string;
  /** With L2 direct server return the packet is not rewritten, so this must equal the VIP port (nftables). */
  readonly port: number;
  /** Backend MAC on the node's segment; when absent the kernel's neighbour table resolves it (ARP / ND). */
  readonly mac?: string;
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
}

export interface TrafficCounter {
  readonly packets: number;
  readonly bytes: number;
}

export type DropReason = 'port' | 'no-backend';

export interface DataPlaneCounters {
  /** Per VIP: what entered the VIP's forwarding path (proxy: datagrams / connections and bytes from clients). */
  readonly vips: readonly ({ readonly vip: string } & TrafficCounter)[];
  /** Per backend address, summed over the VIPs that use it. */
  readonly backends: readonly ({ readonly address: string; readonly mac?: string } & TrafficCounter)[];
  readonly drops: Readonly<Record<DropReason, TrafficCounter>>;
  readonly flowTable: {
    /** Affinity entries now (nftables: live dynamic-map elements; proxy: open connections and UDP sessions). */
    readonly entries: number;
    /** Packets forwarded statelessly because the flow table was full. */
    readonly fullPackets: number;
  };
}

export interface DataPlane {
  /** Makes the forwarding state exactly `desired` (the whole set); the driver computes and applies the delta. */
  apply(desired: readonly VipTable[]): Promise<ApplyResult>;
  counters(): Promise<DataPlaneCounters>;
  /** Stops the driver. nftables: the kernel state stays (forwarding survives a restart) unless asked. */
  close(opts?: { readonly removeState?: boolean }): Promise<void>;
}
