/**
 * FRR's bfdd (8.4): BFD, RFC 5880, single hop over UDP 3784 (RFC 5881). The same daemon on both ends: on the router
 * beside bgpd, which registers a session per `neighbor X bfd` and drops the neighbour (and its routes) when bfdd
 * reports the session down; on a node standalone, with the router as a configured peer, because gobgpd 3.10 has no
 * BFD. Measured: standalone bfdd needs neither zebra nor bgpd when a peer names no interface (with `interface` it
 * waits for zebra to report the interface and stays down).
 */
import { frrAddress, frrWord } from './config-text.js';

/** The lab's and the node's default: 100 ms x 3, a dead peer noticed within 300 ms. */
export const DEFAULT_BFD_INTERVAL_MS = 100;
export const DEFAULT_BFD_DETECT_MULTIPLIER = 3;

/** RFC 5880 §6.8.1 timers as FRR takes them: 10-60000 ms each, multiplier 2-255. */
export interface BfdTimers {
  /** Required Min RX Interval we offer (ms). */
  readonly receiveIntervalMs: number;
  /** Desired Min TX Interval (ms). */
  readonly transmitIntervalMs: number;
  /** Detect Mult: missed packets before the session goes down. */
  readonly detectMultiplier: number;
}

export function bfdTimers(intervalMs = DEFAULT_BFD_INTERVAL_MS, detectMultiplier = DEFAULT_BFD_DETECT_MULTIPLIER) {
  return { receiveIntervalMs: intervalMs, transmitIntervalMs: intervalMs, detectMultiplier } satisfies BfdTimers;
}

/** A configured (not bgpd-registered) single-hop session, as a node runs it towards its router. */
export interface BfdPeer extends BfdTimers {
  readonly address: string;
  /** Our source address on the link; required for a single-hop peer without an interface. */
  readonly localAddress: string;
}

export interface BfddOptions {
  readonly hostname?: string | undefined;
  /** Named timer sets that bgpd refers to (`neighbor X bfd profile NAME`). */
  readonly profiles?: readonly ({ readonly name: string } & BfdTimers)[];
  readonly peers?: readonly BfdPeer[];
}

function timerLines(t: BfdTimers, indent: string): string[] {
  return [
    `${indent}receive-interval ${t.receiveIntervalMs}`,
    `${indent}transmit-interval ${t.transmitIntervalMs}`,
    `${indent}detect-multiplier ${t.detectMultiplier}`,
  ];
}

/** Refuses (INVALID_CONFIG) what would break bfdd.conf's lines: FRR has no quoting (see config-text.ts). */
function checkBfddOptions(opts: BfddOptions): void {
  const at = (field: string) => `frr bfdd config ${field}`;
  if (opts.hostname !== undefined) frrWord(at('hostname'), opts.hostname);
  for (const [i, p] of (opts.profiles ?? []).entries()) frrWord(at(`profiles[${i}].name`), p.name);
  for (const [i, p] of (opts.peers ?? []).entries()) {
    frrAddress(at(`peers[${i}].address`), p.address);
    frrAddress(at(`peers[${i}].localAddress`), p.localAddress);
  }
}

/** The bfdd.conf for `opts`; a name with whitespace or an address that is not one is INVALID_CONFIG. */
export function frrBfddConfig(opts: BfddOptions): string {
  checkBfddOptions(opts);
  const lines = [...(opts.hostname ? [`hostname ${opts.hostname}`] : []), 'log stdout informational', '!', 'bfd'];
  for (const p of opts.profiles ?? []) lines.push(` profile ${p.name}`, ...timerLines(p, '  '), ' !');
  for (const p of opts.peers ?? []) {
    lines.push(` peer ${p.address} local-address ${p.localAddress}`, ...timerLines(p, '  '), ' !');
  }
  lines.push('!', '');
  return lines.join('\n');
}

/**
 * vtysh commands (`-c` each, in order) that configure `p` in a running bfdd: the same lines as bfdd.conf, so a peer
 * set up at run time (by the node agent) and one from the file are the same peer. `shutdown` true sets the session
 * AdminDown (RFC 5880 §6.8.16: the remote system takes the session down at once, without a detection timeout), false
 * lifts it; undefined leaves the admin state as it is. Idempotent for the same local address: bfdd keeps an existing
 * session and its state. Not a change of local address: bfdd keys a single-hop session by the peer address only, so
 * on a session with another local address these lines succeed and change nothing but the address recorded in
 * bfdd's configuration (measured, FRR 8.4.4); replace such a session with bfdPeerRemoveCommands first.
 */
export function bfdPeerCommands(p: BfdPeer, shutdown?: boolean): string[] {
  return [
    'configure terminal',
    'bfd',
    `peer ${p.address} local-address ${p.localAddress}`,
    ...timerLines(p, ''),
    ...(shutdown === undefined ? [] : [shutdown ? 'shutdown' : 'no shutdown']),
  ];
}

/**
 * vtysh commands that remove the session with `p` from a running bfdd, `p.localAddress` being the local address the
 * session runs on (`local` in `show bfd peers json`). The peer's other end sees AdminDown first when FRR sends it,
 * else the session times out there. bfdd (FRR 8.4.4, measured) deletes the peer's session whatever local address
 * `no peer` names, but refuses it ("% Configuration failed. Error type: validation", for ever) once a `peer` line
 * with another local address has recorded that one in its configuration while the session stayed on its own; so the
 * session's own `peer` line comes first and puts the configuration back in step (a no-op when it already is). On a
 * peer bfdd has no session for, the lines create one and delete it: send them for a session bfdd has.
 */
export function bfdPeerRemoveCommands(p: Pick<BfdPeer, 'address' | 'localAddress'>): string[] {
  return [
    'configure terminal',
    'bfd',
    `peer ${p.address} local-address ${p.localAddress}`,
    'exit',
    `no peer ${p.address} local-address ${p.localAddress}`,
  ];
}

/** One session from `show bfd peers json`. */
export interface BfdPeerState {
  readonly peer: string;
  readonly local: string | undefined;
  /** FRR's state: `up`, `down`, `init`, `shutdown` (admin-down). */
  readonly status: string;
  /** Seconds in the current state. */
  readonly sinceS: number | undefined;
}

interface RawBfdPeer {
  peer?: string;
  local?: string;
  status?: string;
  uptime?: number;
  downtime?: number;
}

/** Parses `show bfd peers json` (an array of sessions); entries without a peer address are skipped. */
export function parseBfdPeers(json: string): BfdPeerState[] {
  const doc = JSON.parse(json.trim() || '[]') as unknown;
  if (!Array.isArray(doc)) return [];
  return (doc as RawBfdPeer[]).flatMap((p) =>
    typeof p?.peer === 'string'
      ? [{ peer: p.peer, local: p.local, status: p.status ?? 'unknown', sinceS: p.uptime ?? p.downtime }]
      : [],
  );
}
