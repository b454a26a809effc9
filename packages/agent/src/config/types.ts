/**
 * The agent's own config (`agent.yaml`): who this node is, how it reaches gobgpd, etcd and NATS, and where it serves
 * metrics. parseAgentConfig() returns it fully defaulted, so nothing downstream applies defaults of its own.
 */
import type { Peer } from '@l4fleet/bgp';

/** The data-plane drivers agent.yaml may name; each has a factory in serve/drivers.ts (the compiler checks both). */
export const DATA_PLANE_DRIVERS = ['nftables', 'bpf', 'proxy', 'dry-run'] as const;
export type DataPlaneDriver = (typeof DATA_PLANE_DRIVERS)[number];
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';

/** Paths of PEM files (read at start, so a rotated file needs an agent restart). */
export interface TlsFiles {
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
}

export interface NodeSection {
  /** Node name, unique in the fleet: etcd keys, NATS subjects and `l4fleet node drain NAME` use it. */
  readonly name: string;
  /** Interface facing the router and the backends (the nftables netdev chain hooks it). */
  readonly interface: string;
  /** IPv4 next hop announced for IPv4 VIPs (this node's address on the router's segment). */
  readonly address: string;
  /** IPv6 next hop for IPv6 VIPs; without it IPv6 VIPs are programmed but never announced. */
  readonly address6?: string;
}

/**
 * A BGP peer in agent.yaml: @l4fleet/bgp's Peer (the field meanings and units live there), with agent.yaml's
 * defaults filled in: holdTimeS 3, keepaliveS 1, port 179, passive false (GoBGP 3.10 has no BFD: the hold timer is
 * the failure detector). `password` is never logged.
 */
export type PeerSection = Readonly<
  Required<Pick<Peer, 'address' | 'asn' | 'holdTimeS' | 'keepaliveS' | 'port' | 'passive'>> &
    Pick<Peer, 'password' | 'localAddress' | 'ebgpMultihopTtl'>
>;

export interface BgpSection {
  /** This node's AS. */
  readonly asn: number;
  /** BGP identifier (RFC 6286); default node.address. */
  readonly routerId: string;
  /** gobgpd's own BGP listener; default -1 (no listener: the node connects out to its peers). */
  readonly listenPort: number;
  /** Addresses gobgpd's listener binds (with listenPort >= 0); default GoBGP's (every address). */
  readonly listenAddresses?: readonly string[];
  /**
   * gobgpd's gRPC API on this host: a loopback `ADDRESS:PORT` (127.0.0.0/8, `[::1]`), `localhost:PORT` or
   * `unix:/PATH`; default 127.0.0.1:50051. The API is unauthenticated: no address off the host is taken.
   */
  readonly gobgpdAddress: string;
  readonly peers: readonly PeerSection[];
  /** Standard communities on every VIP route, `ASN:VALUE`; default none. */
  readonly communities: readonly string[];
  /** How long a drain announces GRACEFUL_SHUTDOWN (RFC 8326) before withdrawing, ms; default 2,000. */
  readonly gracefulShutdownMs: number;
}

export interface EtcdSection {
  /** Client URLs, e.g. http://127.0.0.1:2379. */
  readonly endpoints: readonly string[];
  /** Key prefix of the fleet; default /l4fleet. */
  readonly prefix: string;
  readonly tls?: TlsFiles;
  readonly user?: string;
  readonly password?: string;
  /** Default 2,000 ms. */
  readonly dialTimeoutMs: number;
  /** Lease TTL of the node registration, health reports and status record; default 10 s (DEFAULT_LEASE_TTL_S). */
  readonly leaseTtlS: number;
}

export interface NatsSection {
  /** Server URLs, e.g. nats://127.0.0.1:4222; empty: events are off (health still flows through etcd). */
  readonly servers: readonly string[];
  readonly tls?: TlsFiles;
  readonly user?: string;
  readonly password?: string;
  readonly token?: string;
  /** First subject token; default `l4fleet`. Subjects: `<prefix>.<fleet>.<event>.<node>`. */
  readonly subjectPrefix: string;
  /** Events kept while NATS is unreachable before the oldest are dropped; default 1,000. */
  readonly maxPendingEvents: number;
}

export interface MetricsSection {
  /**
   * `ADDRESS:PORT` (`[V6]:PORT`, `localhost:PORT`; canonical) of /metrics, /healthz, /readyz; default 127.0.0.1:9469
   * (loopback: metrics are not public).
   */
  readonly listen: string;
}

export interface DataPlaneSection {
  /** Default nftables. */
  readonly driver: DataPlaneDriver;
  /** nftables table name; default l4fleet. */
  readonly table: string;
  /** proxy driver: address the listeners bind; default the VIP itself. */
  readonly proxyBindAddress?: string;
  /**
   * nftables: the flow maps' default timeout, which no VIP uses since profiles (0012: each VIP's rules carry its
   * profile's idleTimeoutS); accepted for agent.yaml files of earlier versions, with a warning.
   */
  readonly flowTimeoutTcpS?: number;
  readonly flowTimeoutUdpS?: number;
  /** What the agent accepts but tells the operator about (logged at the start, shown by `--check`). */
  readonly warnings?: readonly string[];
  /** nftables and bpf: entries per flow map (bpf: per flow cache, one per family); default the driver's (nftables 65,536, bpf 262,144). */
  readonly flowTableSize?: number;
  /** nftables: how element-only deltas reach the kernel; default auto (netlink when built). */
  readonly deltaWriter?: DeltaWriter;
  /** bpf: outer IPv4 source of encapsulated packets (ipip, gre, gue); default node.address. */
  readonly encapSourceAddress?: string;
  /** bpf: outer IPv6 source; default node.address6 (without either, IPv6 VIPs can only use `l2`). */
  readonly encapSourceAddress6?: string;
  /** bpf: the bpffs mount the maps are pinned under (mounted there when it is not one); default /sys/fs/bpf. */
  readonly bpffsPath?: string;
  /** bpf: pins go to `<bpffsPath>/<pinName>`, one data plane per name; default l4fleet. */
  readonly pinName?: string;
  /** bpf: `native` adds the XDP fast path in front of the tc program (a NIC driver with native XDP); default off. */
  readonly xdp?: 'off' | 'native';
  /**
   * Seconds between two reads of the data plane back from the kernel, each repairing what changed behind the agent
   * (DataPlane.verify); 0 never; default 60.
   */
  readonly verifyIntervalS: number;
}

export type DeltaWriter = 'auto' | 'netlink' | 'nft';

export interface HealthSection {
  /** Source address of probes; default chosen by the kernel. */
  readonly sourceAddress?: string;
  /** Probes in flight at once, per node; default 256. */
  readonly maxConcurrentProbes: number;
  /**
   * PEM file of the roots https checks with `verifyCertificate` trust (an internal CA), read at the start; default
   * Node's bundled public roots (plus NODE_EXTRA_CA_CERTS).
   */
  readonly caFile?: string;
}

export interface DrainSection {
  /** After the withdraw, keep forwarding this long so the router moves the flows first (SIGTERM exit); default 3,000 ms. */
  readonly forwardAfterWithdrawMs: number;
}

export interface StateSection {
  /** Keep the last good inputs on disk, so a restart while etcd is unreachable serves them; default true. */
  readonly enabled: boolean;
  /** Directory of the state file `<fleet>.<node>.state.json`; default /var/lib/l4fleet (created, mode 0750). */
  readonly dir: string;
  /** Largest state file written or read, bytes; default 64 MiB (a 100 x 1,000 fleet takes about 3 MiB). */
  readonly maxBytes: number;
  /** A file not confirmed against etcd for longer than this is stale and ignored, s; 0 = never; default 7 days. */
  readonly maxAgeS: number;
}

/** A BFD session the agent keeps in the node's bfdd (RFC 5880/5881 single hop, towards a router). */
export interface BfdPeerSection {
  /** The router's address on the link (a BGP peer's, by default). */
  readonly address: string;
  /** Our source address: the BGP peer's localAddress, else node.address (IPv4) or node.address6 (IPv6). */
  readonly localAddress: string;
}

export interface BfdSection {
  /** Keep the node's bfdd sessions and report them; default false (no BFD: the BGP hold time detects a dead node). */
  readonly enabled: boolean;
  /** bfdd's vty socket directory (`bfdd --vty_socket`, `vtysh --vty_socket`); default /var/run/frr. */
  readonly vtyDir: string;
  /** Sessions to keep; default one per BGP peer (bgp.peers). */
  readonly peers: readonly BfdPeerSection[];
  /** Required Min RX Interval we offer, ms (RFC 5880 §6.8.1); default 100; FRR takes 10-60,000. */
  readonly receiveIntervalMs: number;
  /** Desired Min TX Interval, ms; default 100. */
  readonly transmitIntervalMs: number;
  /** Missed packets before the session goes down; default 3 (100 ms x 3: a dead node is noticed in 300 ms). */
  readonly detectMultiplier: number;
  /** How often the agent reads the sessions from bfdd, ms; default 1,000. */
  readonly pollIntervalMs: number;
  /**
   * Set the sessions AdminDown while the data plane cannot take the tables (an apply failed), so the router drops
   * the node at once, and lift it when an apply succeeds again; default true (docs/design/0010-bfd.md).
   */
  readonly followDataPlane: boolean;
}

export interface AgentConfig {
  /** Fleet name, in NATS subjects; default `default`. */
  readonly fleet: string;
  readonly node: NodeSection;
  readonly bgp: BgpSection;
  readonly etcd: EtcdSection;
  readonly nats: NatsSection;
  readonly metrics: MetricsSection;
  readonly dataplane: DataPlaneSection;
  readonly health: HealthSection;
  readonly drain: DrainSection;
  readonly state: StateSection;
  readonly bfd: BfdSection;
  /** Default info. */
  readonly logLevel: LogLevel;
}
