/**
 * The `bfd` section of agent.yaml: the node's BFD sessions (RFC 5880/5881, single hop) that the agent keeps in the
 * node's FRR bfdd and reports. bfdd itself is started by FRR's service (or the lab), never by the agent (0010).
 */
import {
  addressField,
  boolField as bool,
  intField as int,
  listField as list,
  type Problems,
  sectionField as section,
  showValue as show,
  stringField as str,
  unusableAddress,
  valueText,
} from '@l4fleet/config';
import * as d from './defaults.js';
import type { BfdPeerSection, BfdSection, BgpSection, NodeSection } from './types.js';

const FIELDS = [
  'enabled',
  'vtyDir',
  'peers',
  'receiveIntervalMs',
  'transmitIntervalMs',
  'detectMultiplier',
  'pollIntervalMs',
  'followDataPlane',
] as const;

/** FRR 8.4's bounds (bfdd refuses anything else, and would refuse it only when the agent configures it). */
const INTERVAL_MIN_MS = 10;
const INTERVAL_MAX_MS = 60_000;
const MULTIPLIER_MIN = 2;
const MULTIPLIER_MAX = 255;

/**
 * An IPv6 link-local address (fe80::/10) in canonical text (every first group from fe80 to febf): reached or bound
 * only with its interface (RFC 4007 §11; connect(2) or bind(2) without a scope fails with EINVAL), which neither
 * bgp.peers, bgp.listenAddresses nor bfd.peers can name.
 */
export const isLinkLocal6 = (address: string): boolean => /^fe[89ab][0-9a-f]:/.test(address);

/** The problem of a link-local `v` in bgp.peers, bgp.listenAddresses or bfd.peers: one wording for all. */
export const linkLocal6Problem = (v: unknown): string =>
  `${show(v)} is a link-local address (fe80::/10): a socket reaches or binds it only with its interface, and a zone` +
  ' or interface is not supported here; use a global or unique local address';

/**
 * Why a BGP or BFD peer address or local address (canonical) is refused as IPv4-compatible (::/96 holding an IPv4
 * address) or IPv4-mapped (::ffff:0:0/96), in node.address6's words (@l4fleet/config unusableAddress); undefined if
 * it is neither. bfdd prints such an address dotted (`::198.18.0.1`, inet_ntop) where the config has `::c612:1`: the
 * BFD controller's match of bfdd's sessions by text then never held, and the session was re-added every poll.
 */
export function ipv4In6Problem(address: string): string | undefined {
  const why = unusableAddress(address);
  return why !== undefined && /IPv4-(mapped|compatible)/.test(why) ? why : undefined;
}

/**
 * The local address towards `address`: the BGP peer's own, else the node's address of that family. `explicit`: the
 * address is from bfd.peers, so a BGP localAddress of the other family is reported here too (for the BGP peers as
 * sessions, parse.ts reports it once, under bgp.peers).
 */
function localFor(
  p: Problems,
  path: string,
  address: string,
  node: NodeSection,
  bgp: BgpSection,
  explicit: boolean,
): string {
  const j = bgp.peers.findIndex((b) => b.address === address);
  const fromBgp = bgp.peers[j]?.localAddress;
  if (fromBgp) {
    const [family, localFamily] = [address, fromBgp].map((a) => (a.includes(':') ? 6 : 4));
    if (explicit && family !== localFamily) {
      p.add(
        path,
        `"${address}" is IPv${family} but its local address "${fromBgp}" (bgp.peers[${j}].localAddress) is IPv${localFamily}`,
      );
    }
    return fromBgp;
  }
  if (!address.includes(':')) return node.address;
  if (node.address6) return node.address6;
  p.add(path, `"${address}" is IPv6 and node.address6 is not set (the session needs a local IPv6 address)`);
  return '';
}

/** Validates `raw.bfd`; the peers default to the BGP peers. */
export function parseBfd(p: Problems, v: unknown, node: NodeSection, bgp: BgpSection): BfdSection {
  const o = section(p, 'bfd', v, FIELDS);
  const addresses =
    o.peers === undefined
      ? bgp.peers.map((b) => b.address)
      : list(p, 'bfd.peers', o.peers).map((a, i) => {
          const address = addressField(p, `bfd.peers[${i}]`, a)?.address;
          if (address === undefined) return valueText(a);
          // bfdd needs the interface of a link-local peer (as gobgpd does, parse.ts), and there is no field for it.
          if (isLinkLocal6(address)) p.add(`bfd.peers[${i}]`, linkLocal6Problem(a));
          const why = ipv4In6Problem(address);
          if (why) p.add(`bfd.peers[${i}]`, `${show(a)} is ${why}`);
          return address;
        });
  const seen = new Map<string, number>();
  const peers: BfdPeerSection[] = [];
  addresses.forEach((address, i) => {
    const first = seen.get(address);
    if (first !== undefined) {
      // A duplicate BGP peer is reported once, under bgp.peers.
      if (o.peers !== undefined) p.add(`bfd.peers[${i}]`, `"${address}" duplicates bfd.peers[${first}]`);
      return;
    }
    seen.set(address, i);
    const path = o.peers === undefined ? `bgp.peers[${i}].address` : `bfd.peers[${i}]`;
    peers.push({ address, localAddress: localFor(p, path, address, node, bgp, o.peers !== undefined) });
  });
  const interval = (field: 'receiveIntervalMs' | 'transmitIntervalMs', dflt: number) =>
    int(p, `bfd.${field}`, o[field], INTERVAL_MIN_MS, INTERVAL_MAX_MS, 'an interval in ms', dflt);
  const enabled = bool(p, 'bfd.enabled', o.enabled, false);
  if (enabled && peers.length === 0) p.add('bfd.peers', 'no peers: BFD is enabled but there is no session to keep');
  return {
    enabled,
    vtyDir: str(p, 'bfd.vtyDir', o.vtyDir, /^\/[^\0]*$/, 'an absolute directory path', d.DEFAULT_BFD_VTY_DIR),
    peers,
    receiveIntervalMs: interval('receiveIntervalMs', d.DEFAULT_BFD_RECEIVE_INTERVAL_MS),
    transmitIntervalMs: interval('transmitIntervalMs', d.DEFAULT_BFD_TRANSMIT_INTERVAL_MS),
    detectMultiplier: int(
      p,
      'bfd.detectMultiplier',
      o.detectMultiplier,
      MULTIPLIER_MIN,
      MULTIPLIER_MAX,
      'a multiplier',
      d.DEFAULT_BFD_DETECT_MULTIPLIER,
    ),
    pollIntervalMs: int(
      p,
      'bfd.pollIntervalMs',
      o.pollIntervalMs,
      100,
      60_000,
      'an interval in ms',
      d.DEFAULT_BFD_POLL_INTERVAL_MS,
    ),
    followDataPlane: bool(p, 'bfd.followDataPlane', o.followDataPlane, true),
  };
}
