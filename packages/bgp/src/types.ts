/** One VIP announcement: a host route with its next hop and attributes. */
export interface Advertisement {
  /** Host route: `198.51.100.10/32` or `2001:db8::10/128`. */
  prefix: string;
  /** Next hop of the same family as the prefix (usually the node's own address on the router's segment). */
  nextHop: string;
  /** Standard communities, `ASN:VALUE` each 0-65535, e.g. `65535:0` (RFC 8326 GRACEFUL_SHUTDOWN). */
  communities?: readonly string[];
  /** MULTI_EXIT_DISC (RFC 4271 §5.1.4), 0-4294967295; unset means no MED attribute. */
  med?: number;
  /** LOCAL_PREF (RFC 4271 §5.1.5), only meaningful towards iBGP peers; unset means no attribute. */
  localPref?: number;
}

/** A BGP neighbour of the node's gobgpd, usually the upstream router. */
export interface Peer {
  /** Neighbour address (IPv4 or IPv6). */
  address: string;
  /** Neighbour AS, 1-4294967295. */
  asn: number;
  /** TCP MD5 signature password (RFC 2385), at most 80 characters (Linux TCP_MD5SIG_MAXKEYLEN). */
  password?: string;
  /**
   * Hold time offered in OPEN, seconds; default 3. 3-65535 (RFC 4271 §4.2); RFC 4271's 0 (no keepalives) is refused:
   * gobgpd's API reads 0 as unset.
   */
  holdTimeS?: number;
  /** Keepalive interval, seconds; default 1. 1-21845, below the hold time (0 is refused, as for the hold time). */
  keepaliveS?: number;
  /** Seconds between connection attempts while the session is down; default 5 (GoBGP's own is 120). */
  connectRetryS?: number;
  /** Neighbour's TCP port; default 179. */
  port?: number;
  /** Source address for the session (which local address the router sees). Default: chosen by the kernel. */
  localAddress?: string;
  /** Only wait for the neighbour to connect; default false. */
  passive?: boolean;
  /** eBGP multihop TTL; unset means directly connected (TTL 1). */
  ebgpMultihopTtl?: number;
  /** Free text shown by `gobgp neighbor`. */
  description?: string;
}

/** gobgpd's global (speaker-wide) settings. */
export interface GlobalConfig {
  /** Local AS, 1-4294967295. */
  asn: number;
  /** BGP identifier, a non-zero dotted IPv4 address (RFC 6286). */
  routerId: string;
  /** TCP port gobgpd accepts sessions on; -1 means no listener (connect out only). Default 179. */
  listenPort?: number;
  /** Addresses the listener binds; default GoBGP's (0.0.0.0 and ::). */
  listenAddresses?: readonly string[];
}

/** BGP FSM states (RFC 4271 §8.2.2), plus `unknown` while gobgpd itself is unreachable. */
export type SessionState = 'unknown' | 'idle' | 'connect' | 'active' | 'opensent' | 'openconfirm' | 'established';

/** A session state change. */
export interface PeerEvent {
  address: string;
  asn: number;
  state: SessionState;
  previousState: SessionState;
  /** Wall-clock time the speaker saw the change, ms since the epoch. */
  atMs: number;
  /** Set when the speaker, not gobgpd, produced the event: gobgpd stopped answering. */
  reason?: 'gobgpdUnreachable';
}

/** The current state of one configured peer, for metrics and status. */
export interface PeerStatus {
  address: string;
  asn: number;
  state: SessionState;
  /** True when the session was shut down administratively (or on a prefix limit). */
  adminDown: boolean;
  /** Hold time agreed in OPEN, seconds (0 while not established). */
  negotiatedHoldTimeS: number;
  /** Seconds since the session came up; undefined while it is down. */
  uptimeS: number | undefined;
  /** Prefixes gobgpd announced to / received from this peer, all families. */
  advertised: number;
  received: number;
}

/** Announces VIPs through a BGP speaker. Every setter takes the whole desired state and reconciles. */
export interface Speaker {
  /** Starts BGP in gobgpd (StartBgp) if it runs bare; checks that a running gobgpd has the same AS and id. */
  ensureGlobal(g: GlobalConfig): Promise<void>;
  /** Makes gobgpd's neighbour set exactly `peers` (adds, deletes, re-creates peers whose settings changed). */
  setPeers(peers: readonly Peer[]): Promise<void>;
  /** Makes gobgpd's locally originated paths exactly `advs`; paths already right are left alone. */
  setAdvertisements(advs: readonly Advertisement[]): Promise<void>;
  /** Session state changes; every call gets its own iterator, ended by close(). */
  peerEvents(): AsyncIterable<PeerEvent>;
  /** Current state of every peer gobgpd knows. */
  peerStates(): Promise<PeerStatus[]>;
  /**
   * Stops the speaker's own work (stream, timers, channel). Leaves gobgpd's routes in place. A drain (RFC 8326) is
   * two calls of setAdvertisements: the set with GRACEFUL_SHUTDOWN_COMMUNITY, then, after the wait, the empty set;
   * the agent's node state decides when (packages/agent/src/lifecycle), so a drain survives restarts and can be
   * cancelled.
   */
  close(): Promise<void>;
}
