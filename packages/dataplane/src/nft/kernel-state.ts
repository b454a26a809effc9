/** What the nftables driver believes the kernel holds: its model of the table (plan.ts plans against it). */
import type { IpFamily, Protocol } from '@l4fleet/maglev';

export interface KernelBackend {
  readonly id: number;
  readonly family: IpFamily;
  readonly addressHex: string;
  readonly mac?: string;
}

export interface KernelVip {
  readonly key: string;
  readonly family: IpFamily;
  readonly addressHex: string;
  readonly protocol: Protocol;
  readonly port: number;
  /** vipSignature() of the rules in the kernel; '' when unknown (rules are then rewritten). */
  readonly signature: string;
  /**
   * Rules in the VIP's chain: as read back (readKernelState), or as the plan wrote them (vipRules()). A chain with
   * another number than its signature's rules (one deleted or added by hand: the signature is one rule's comment) is
   * rewritten by the plan; verify's light read compares it. Absent: not known (not compared).
   */
  readonly rules?: number;
  /** The slot map: backend id per slot, 0 where it has no element. */
  readonly base: Uint32Array;
  /**
   * The overlay map, consulted first: per slot 0 (no element), OVERLAY_NO_BACKEND, or a backend id.
   * Recent changes go here (adds only, half the kernel work of replacing slot-map elements) and are
   * folded into the slot map later, off the critical path.
   */
  readonly overlay: Uint32Array;
  /** Elements in the overlay. */
  readonly overlayCount: number;
  /** Backend ids whose remembered flows stay (its live set): the pool, less `reselect` VIPs' down backends. */
  readonly live: ReadonlySet<number>;
  readonly label: string;
  /**
   * Read back without its `vips4`/`vips6` jump (deleted, or its verdict rewritten, by hand): the plan adds it (deleting
   * an element of its key first: KernelState.routed), a removal deletes it only when its key is there.
   */
  readonly jumpMissing?: boolean;
}

/** What the driver believes the kernel holds (read back from it after a restart). */
export interface KernelState {
  readonly layoutSignature: string;
  readonly vips: ReadonlyMap<string, KernelVip>;
  /** By backendIdentity(). */
  readonly backends: ReadonlyMap<string, KernelBackend>;
  readonly maxBackendId: number;
  /**
   * Backends that left, by backendIdentity(): the same backend coming back gets its id again, so flow entries
   * still pointing at that id point at the same machine, and a slot whose slot-map element still holds that id
   * needs only its overlay element removed. Another backend never gets such an id. Kept in the kernel too: a
   * retired backend keeps its address (and MAC) element and loses its counter, so a restarted driver reads it back
   * (readKernelState) and neither reuses its id nor forgets it. No packet reaches such an element: its id is in no
   * live set and no slot the overlay does not override.
   */
  readonly retired?: ReadonlyMap<string, KernelBackend>;
  /**
   * The table has the DROP_SOURCE counter that sourceRanges rules count into. A table written before sourceRanges
   * existed lacks it: the plan adds it (once), so an upgraded node gets it without a new layout, which would empty
   * the flow maps. Absent: not known to be there.
   */
  readonly dropSourceCounter?: boolean;
  /**
   * The VIP addresses (`family|hex`) whose echo chain is in the table (echo.ts). Absent: the table predates the echo
   * maps (written by an older version); the plan adds them and the ingress rules that use them, once.
   */
  readonly echoAddresses?: ReadonlySet<string>;
  /**
   * The base chains (`ingress`, `forward`) read back without their rules, or with another number of them (flushed or
   * edited by hand): the plan writes them again, in one transaction with the rest. Absent: none.
   */
  readonly baseChainsDiffer?: ReadonlySet<string>;
  /** Of `echoAddresses`, those read back without their `echo4`/`echo6` element (deleted by hand). Absent: none. */
  readonly echoUnmapped?: ReadonlySet<string>;
  /**
   * The addresses (`family|hex`) in `vipaddrs4`/`vipaddrs6` as read back (readKernelState); the plan adds the missing
   * ones and deletes the others. Absent: those of `vips` (what the plan wrote).
   */
  readonly vipAddresses?: ReadonlySet<string>;
  /**
   * The VIP keys with a `vips4`/`vips6` element as read back (readKernelState), whatever its verdict: one rewritten by
   * hand (say `: drop`) is there, and an `add` of the VIP's jump would be refused ("File exists", the whole
   * transaction): the plan deletes it first. Absent: those of `vips` not `jumpMissing` (what the plan wrote).
   */
  readonly routed?: ReadonlySet<string>;
  /**
   * The table's own maps, sets and counters (base-objects.ts) read back missing (deleted by hand: one no rule named):
   * the plan declares them again before any rule names them. Absent: none.
   */
  readonly baseMissing?: ReadonlySet<string>;
}

/** Retired backends remembered at most (the oldest are forgotten first, and their elements deleted). */
export const RETIRED_MAX = 65_536;

export const backendIdentity = (addressHex: string, mac?: string): string => `${addressHex}|${mac ?? ''}`;
