/**
 * Names of everything the driver keeps in its nftables table, in one place (as Katran keeps its map
 * names). VIP objects are named from the VIP itself, so a restarted agent finds them again.
 */
import { addressText, vipKey } from '@l4fleet/config';
import type { IpFamily, Protocol } from '@l4fleet/maglev';

/** Bumped when the table's shape changes: an older table is then replaced once, not patched. */
export const LAYOUT_VERSION = 3;

/** Backend ids in meta mark carry this bit, so a slot number (< 2^21) is never taken for a backend. */
export const BACKEND_ID_BIT = 0x8000_0000;

export const BASE_CHAIN = 'ingress';
export const FORWARD_CHAIN = 'forward';
export const DROP_PORT = 'drop_port';
export const DROP_NO_BACKEND = 'drop_no_backend';
/** Packets from a client outside the VIP's sourceRanges (source-ranges.ts). */
export const DROP_SOURCE = 'drop_source';
/** IPv4 fragments, and IPv6 packets whose first next header is a fragment header, to a VIP address (as bpf's). */
export const DROP_FRAGMENT = 'drop_fragment';
export const FLOW_TABLE_FULL = 'flow_table_full';
/** Echo requests (ping) the table answered from a VIP address (echo.ts). */
export const ICMP_ECHO = 'icmp_echo';
export const BACKEND_COUNTERS = 'backend_counters';
export const MACS = 'macs';

export const backendsMap = (family: IpFamily): string => `backends${family}`;
export const vipsMap = (family: IpFamily): string => `vips${family}`;
export const vipAddressesSet = (family: IpFamily): string => `vipaddrs${family}`;
export const flowsMap = (family: IpFamily, protocol: Protocol): string => `flows${family}_${protocol}`;
/** IPv6 only: the second flow map, under a second hash of the 5-tuple (see ruleset.ts, FLOW_KEY_SEEDS). */
export const secondFlowsMap = (protocol: Protocol): string => `flows6b_${protocol}`;
/** IPv6 only: the exact 5-tuple and backend id of each remembered flow (see ruleset.ts, FLOW_KEY_SEEDS). */
export const exactFlowsSet = (protocol: Protocol): string => `exact6_${protocol}`;
/** Per VIP: the chain, and the VIP's packet counter, are named by the key itself. */
export const slotsMap = (vipKey: string): string => `${vipKey}_slots`;
/** Per VIP: recent slot changes, looked up before the slot map and folded into it later (see plan.ts). */
export const overlayMap = (vipKey: string): string => `${vipKey}_over`;
/** An overlay value meaning "this slot has no backend" (bit 31 alone: never a backend id). */
export const OVERLAY_NO_BACKEND = 0x8000_0000;
export const liveSet = (vipKey: string): string => `${vipKey}_live`;
export const backendCounter = (id: number): string => `b_${id.toString(16)}`;
/** VIP address -> its echo chain (echo.ts), per family. */
export const echoMap = (family: IpFamily): string => `echo${family}`;
/** Per VIP address (network-order hex, 8 or 32 digits): the chain that answers its echo requests. */
export const echoChain = (addressHex: string): string => `echo_${addressHex}`;

const ECHO_CHAIN = /^echo_([0-9a-f]{8}|[0-9a-f]{32})$/;

/** The address (hex) of an echo chain's name, or undefined for any other chain. */
export const parseEchoChain = (name: string): string | undefined => ECHO_CHAIN.exec(name)?.[1];

const VIP_KEY = /^v_([0-9a-f]{8}|[0-9a-f]{32})_(tcp|udp)_(\d+)$/;

export function parseVipKey(
  key: string,
): { family: IpFamily; addressHex: string; protocol: Protocol; port: number } | undefined {
  const m = VIP_KEY.exec(key);
  if (!m) return undefined;
  const addressHex = m[1] as string;
  return { family: addressHex.length === 8 ? 4 : 6, addressHex, protocol: m[2] as Protocol, port: Number(m[3]) };
}

/**
 * An address given as network-order hex (4 or 16 bytes), in canonical text (RFC 5952 for IPv6): what nft takes, and
 * what labels (counters, VIP keys) must match.
 */
export function hexToAddress(hex: string): string {
  return addressText(hex.length === 8 ? 4 : 6, Buffer.from(hex, 'hex'));
}

/** The VIP a key names, as the rest of the driver names VIPs (`198.51.100.7:80/tcp`); undefined for another name. */
export function vipLabel(key: string): string | undefined {
  const k = parseVipKey(key);
  return k && vipKey({ address: hexToAddress(k.addressHex), port: k.port, protocol: k.protocol });
}

/**
 * The VIPs whose objects (chain, counter, slot map, overlay, live set) `text` names, as ` (vip LABEL: NAME, ...; ...)`,
 * or '' when it names none: appended to a refusal's kernel text, which names nft objects, not the VIP an operator
 * configured.
 */
export function vipsNamedIn(text: string): string {
  const byLabel = new Map<string, Set<string>>();
  for (const m of text.matchAll(/\bv_(?:[0-9a-f]{32}|[0-9a-f]{8})_(?:tcp|udp)_\d+(?:_(?:slots|over|live))?\b/g)) {
    const name = m[0];
    const label = vipLabel(name.replace(/_(?:slots|over|live)$/, ''));
    if (label !== undefined) byLabel.set(label, (byLabel.get(label) ?? new Set()).add(name));
  }
  const parts = [...byLabel].map(([label, names]) => `vip ${label}: ${[...names].join(', ')}`);
  return parts.length === 0 ? '' : ` (${parts.join('; ')})`;
}
