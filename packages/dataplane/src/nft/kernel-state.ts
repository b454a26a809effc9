/** What the nftables driver believes the kernel holds: its model of the table (plan.ts plans against it). */
import type { IpFamily, Protocol } from '@l4fleet/maglev';
import { echoMap, hexToAddress, parseVipKey, vipsMap } from './names.js';

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
  /**
   * The chain's rules as nft listed them (state.ts parseSkeleton chainTexts) right after the driver wrote them
   * (drift.ts withListing) or as read back: verify's light read compares the listing with it, so a rule replaced by
   * hand (count and signature kept) is found, whatever text this nft version lists for what the plan wrote. Absent:
   * not known yet (the plan leaves it out for a chain whose rules it writes).
   */
  readonly listed?: string;
  /**
   * Read back (readKernelState): the chain's listing, which the plan compares with the rules it would write
   * (state.ts sameRules): one replaced by hand before a restart or a full read is written again. The plan's model never
   * has it.
   */
  readonly readListing?: string;
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
  /**
   * Of `echoAddresses`, those read back without their `echo4`/`echo6` element going to their chain (deleted, or its
   * verdict rewritten, by hand). Absent: none.
   */
  readonly echoUnmapped?: ReadonlySet<string>;
  /**
   * The addresses whose `echo4`/`echo6` element does not go to their own echo chain (rewritten by hand, or added for
   * an address with no chain): the plan deletes them before anything else (one may name a chain it deletes), and
   * writes the desired ones again. Absent: none.
   */
  readonly echoStray?: ReadonlySet<string>;
  /**
   * The addresses (`family|hex`) in `vipaddrs4`/`vipaddrs6` as read back (readKernelState); the plan adds the missing
   * ones and deletes the others. Absent: those of `vips` (what the plan wrote).
   */
  readonly vipAddresses?: ReadonlySet<string>;
  /**
   * The VIP keys with a `vips4`/`vips6` element as read back (readKernelState), whatever its verdict: one rewritten by
   * hand (say `: drop`) is there, and an `add` of the VIP's jump would be refused ("File exists", the whole
   * transaction): the plan deletes it first. One of a key no VIP has (added by hand) is deleted, before anything else
   * (it may name a chain the plan deletes). Absent: those of `vips` not `jumpMissing` (what the plan wrote).
   */
  readonly routed?: ReadonlySet<string>;
  /**
   * The table's own maps, sets and counters (base-objects.ts) read back missing (deleted by hand: one no rule named):
   * the plan declares them again before any rule names them. Absent: none.
   */
  readonly baseMissing?: ReadonlySet<string>;
  /**
   * The rules of the table's own chains (`ingress`, `forward`, each `echo_<hex>`: own-chains.ts), by chain, as nft
   * listed them right after the driver wrote them (drift.ts withListing) or as read back: verify's light read compares
   * the listing with it, so a rule replaced by hand (their number kept) is found. A chain absent: not known yet.
   */
  readonly listed?: ReadonlyMap<string, string>;
  /**
   * Read back (readKernelState): the same listing, which the plan compares with the rules it would write (sameRules):
   * a chain with a rule replaced by hand before a restart or a full read is written again. The plan's model never has
   * it.
   */
  readonly readListing?: ReadonlyMap<string, string>;
}

/** Retired backends remembered at most (the oldest are forgotten first, and their elements deleted). */
export const RETIRED_MAX = 65_536;

export const backendIdentity = (addressHex: string, mac?: string): string => `${addressHex}|${mac ?? ''}`;

/**
 * The deletions of the routing elements added by hand for what no VIP has: a `vips4`/`vips6` element of a key neither
 * in `current.vips` nor in `desired` (KernelState.routed), and the echo elements not going to their address's chain
 * (KernelState.echoStray). Each routes packets (to a VIP's chain, or `accept`s or `drop`s them) the driver never
 * wrote; the plan deletes them before anything else, as one may name a chain it deletes (the kernel would refuse the
 * whole transaction).
 */
export function deleteStrays(table: string, current: KernelState, desired: ReadonlySet<string>): string[] {
  const out: string[] = [];
  for (const key of current.routed ?? []) {
    const k = parseVipKey(key);
    if (k === undefined || current.vips.has(key) || desired.has(key)) continue;
    const e = `${hexToAddress(k.addressHex)} . ${k.protocol} . ${k.port}`;
    out.push(`delete element netdev ${table} ${vipsMap(k.family)} { ${e} }`);
  }
  for (const a of current.echoStray ?? []) {
    const [family, hex] = a.split('|') as [string, string];
    out.push(`delete element netdev ${table} ${echoMap(Number(family) as IpFamily)} { ${hexToAddress(hex)} }`);
  }
  return out;
}

/**
 * Whether a chain's `listed` rules (state.ts parseSkeleton chainTexts) are the `written` ones (ruleset.ts vipRules,
 * or a chain of the table's own: own-chains.ts), compared in one form (canonical()): nft lists what the plan writes in
 * its own. Only a read back (a restart, a full read) is compared so: verify compares the listing with the one taken
 * right after the write (drift.ts withListing), whatever this nft lists. A form canonical() misses (an nft other than
 * 1.0.6) costs a rewrite of the chain's rules (flows kept) at each restart or full read, never at every verify.
 */
export function sameRules(listed: string, written: readonly string[]): boolean {
  return canonical(listed) === canonical(written.join('\n'));
}

const SECONDS = { d: 86_400, h: 3_600, m: 60, s: 1 } as const;

/**
 * Rules in one form, as nft 1.0.6 lists them (`meta mark & 0x80000000 == 0` as `meta mark 0x00000000/1`, `tcp flags &
 * (syn | ack) != syn` as `tcp flags != syn / syn,ack`, `ip6 nexthdr 58` as `ip6 nexthdr ipv6-icmp`, `icmp type set
 * echo-reply` as `th sport set th sport & 255`), then numbers in decimal, durations in seconds (`timeout 5m`
 * for `timeout 300s`), one space between words, and a sourceRanges set as `{ }`: nft lists it merged, without `/32`,
 * one prefix without braces; the signature's digest stands for it (and verify compares the listing itself).
 */
function canonical(rules: string): string {
  return rules
    .split('\n')
    .map((r) =>
      r
        .replace(/\bsaddr != (?:\{[^}]*\}|\S+)/g, 'saddr != { }')
        // nft names IPv6's next headers from /etc/protocols when it has one; the plan writes numbers (ruleset.ts).
        .replace(/\bnexthdr ipv6-icmp\b/g, 'nexthdr 58')
        .replace(/\bnexthdr ipv6-frag\b/g, 'nexthdr 44')
        // An ICMP type set is listed as the 16-bit write it is (type and code): echo-reply is 0, ICMPv6's 129.
        .replace(/\bicmp type set echo-reply\b/g, 'th sport set th sport & 0xff')
        .replace(/\bicmpv6 type set echo-reply\b/g, 'th sport set th sport & 0x81ff | 0x8100')
        .replace(/\bmeta mark & 0x80000000 == 0\b/g, 'meta mark 0x00000000/1')
        .replace(/\btcp flags & \(syn \| ack\) (==|!=) syn\b/g, (_, op: string) =>
          op === '==' ? 'tcp flags syn / syn,ack' : 'tcp flags != syn / syn,ack',
        )
        .replace(/\b0x[0-9a-f]+\b/g, (hex) => String(Number.parseInt(hex, 16)))
        .replace(/\btimeout ((?:\d+[dhms])+)\b/g, (_, d: string) => {
          let n = 0;
          for (const [, v, unit] of d.matchAll(/(\d+)([dhms])/g))
            n += Number(v) * SECONDS[unit as keyof typeof SECONDS];
          return `timeout ${n}s`;
        })
        .replace(/\s+/g, ' ')
        .trim(),
    )
    .join('\n');
}
