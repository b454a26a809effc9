/**
 * The lab topology model: pure data from which the netns runtime, the Docker runtime and the containerlab export are
 * all generated, so the three never disagree on names or addresses.
 *
 *   client(s) --access--> router (FRR) --fabric segment--> nodes (gobgpd + agent), backends (identity server)
 *                                       `-backends segment--> backends, with `backendNetwork: routed` (off the fabric)
 *   host (root ns) --control segment--> control (etcd, NATS) <-- nodes
 *
 * Addresses: links in 198.18.0.0/15 (RFC 2544 benchmarking range), VIPs in 198.51.100.0/24 (RFC 5737 TEST-NET-2),
 * IPv6 in 2001:db8::/32 (RFC 3849). Only the control segment touches the root namespace, so only it needs an address
 * that differs between labs running side by side (`controlSlot`); everything else lives inside the lab's namespaces.
 */
import { LabError } from '../errors.js';
import { type DataPathOptions, dataPathOf, type LabDataPath } from './data-path.js';
import { isLabId, LAB_ID_CHARS, LAB_ID_RULE } from './lab-id.js';

/** Every namespace, interface in the root namespace, nft table and container the lab makes starts with this. */
export const LAB_PREFIX = 'l4f-';
export const DEFAULT_LAB_ID = 'lab';
export const DEFAULT_NODES = 3;
export const DEFAULT_BACKENDS = 4;
/**
 * The router takes one ECMP path per node (runtime/frr.ts `maximum-paths`, which follows this) and `lab up` waits for
 * a next hop from every node (readiness.ts). 64: within FRR's compile-time MULTIPATH_NUM on the builds the lab meets
 * (Debian 12's FRR 8.4 takes up to 256; other builds fewer), so a `maximum-paths` it refuses never breaks a lab.
 */
export const MAX_NODES = 64;
export const MAX_BACKENDS = 150;
export const ROUTER_ASN = 65000;
export const NODE_ASN = 65001;
/** BGP timers the issue asks for: a dead node is noticed by the router within the hold time. */
export const BGP_HOLD_TIME_S = 3;
export const BGP_KEEPALIVE_S = 1;
export const BGP_PASSWORD = 'l4fleet-lab';
/** BFD (RFC 5880) timer bounds as FRR's bfdd takes them. */
export const BFD_INTERVAL_MS_RANGE: readonly [number, number] = [10, 60_000];
export const BFD_MULTIPLIER_RANGE: readonly [number, number] = [2, 255];
export const ETCD_CLIENT_PORT = 2379;
export const ETCD_PEER_PORT = 2380;
/** Member i listens on ETCD_CLIENT_PORT + (i - 1) * this (2379, 12379, 22379), as etcd's own Procfile does. */
export const ETCD_MEMBER_PORT_STEP = 10_000;
/** Three members: the smallest cluster that keeps quorum (and writes) when one member dies (etcd's FAQ). */
export const DEFAULT_ETCD_MEMBERS = 3;
/** An even count adds no fault tolerance over the odd count below it (quorum = floor(n/2) + 1). */
export const ETCD_MEMBER_COUNTS: readonly number[] = [1, 3, 5];
export const NATS_PORT = 4222;
export const AGENT_METRICS_PORT = 9469;
export const GOBGPD_API_PORT = 50051;

export type HostKind = 'host' | 'client' | 'router' | 'node' | 'backend' | 'control';
export type Protocol = 'tcp' | 'udp';

export interface LabHost {
  readonly name: string;
  readonly kind: HostKind;
  /** Network namespace (netns runtime) / container name; the root namespace for kind `host`. */
  readonly namespace: string | undefined;
}

export interface Attachment {
  readonly host: string;
  /** Interface name inside the host (for the segment's hub: the bridge). */
  readonly iface: string;
  readonly ipv4: string;
  readonly ipv6?: string;
}

export interface Segment {
  readonly name: string;
  readonly ipv4Prefix: string;
  readonly ipv6Prefix?: string;
  /** Host holding the bridge (netns runtime); its attachment's iface is the bridge. Absent: a point-to-point veth. */
  readonly hub?: string;
  readonly attachments: readonly Attachment[];
}

export interface LabVip {
  readonly name: string;
  readonly address: string;
  readonly port: number;
  readonly protocol: Protocol;
}

export interface Topology {
  readonly id: string;
  readonly controlSlot: number;
  /** The nodes' indexes, ascending (`node<i>`): add-node takes the next one, nothing parses names. */
  readonly nodeIndexes: readonly number[];
  readonly hosts: readonly LabHost[];
  readonly segments: readonly Segment[];
  readonly vips: readonly LabVip[];
  /** Data plane, where the backends sit, the pools' forwarding (data-path.ts). */
  readonly dataPath: LabDataPath;
  readonly bgp: {
    readonly routerAsn: number;
    readonly nodeAsn: number;
    readonly routerAddress: string;
    readonly holdTimeS: number;
    readonly keepaliveS: number;
    readonly password: string;
    /** BFD on every router-node session; undefined: none, a dead node is noticed by the hold timer. */
    readonly bfd: LabBfd | undefined;
  };
  readonly control: {
    readonly address: string;
    /** Every member's client URL, in member order: what nodes and the CLI are given. */
    readonly etcdEndpoints: readonly string[];
    readonly etcdMembers: readonly EtcdMember[];
    readonly natsUrl: string;
  };
}

/** One etcd member of the lab: all live in the control host, on their own ports (`lab kill etcd2` stops one). */
export interface EtcdMember {
  /** `etcd<i>`: never a host name, so `lab kill` / `lab restart` tell them apart. */
  readonly name: string;
  readonly clientPort: number;
  readonly clientUrl: string;
  /** Peer traffic stays inside the control host (loopback). */
  readonly peerUrl: string;
}

export function etcdMemberName(index: number): string {
  return `etcd${index}`;
}

/** BFD timers of the router-node sessions (both ends): a dead node is noticed within intervalMs x multiplier. */
export interface LabBfd {
  readonly intervalMs: number;
  readonly multiplier: number;
}

export interface TopologyOptions extends DataPathOptions {
  /** Lab id, part of every name (`l4f-<id>-node1`); 1-8 of [a-z0-9]. Default `lab`. */
  id?: string;
  nodes?: number;
  backends?: number;
  clients?: number;
  /** Third octet of the control segment 198.19.<slot>.0/24; 0-255, default 0. */
  controlSlot?: number;
  /** Node indexes to build (default 1..nodes); add-node appends the next free index. */
  nodeIndexes?: readonly number[];
  /** etcd cluster members, 1, 3 (default) or 5. */
  etcdMembers?: number;
  /** BFD between the router and every node (netns runtime); default none. `lab up` turns it on with 100 ms x 3. */
  bfd?: LabBfd | undefined;
}

export const VIP_TCP: LabVip = { name: 'web', address: '198.51.100.10', port: 80, protocol: 'tcp' };
export const VIP_UDP: LabVip = { name: 'echo-udp', address: '198.51.100.11', port: 7000, protocol: 'udp' };
export const VIP_TCP6: LabVip = { name: 'web6', address: '2001:db8:100::10', port: 80, protocol: 'tcp' };

/** The segment routed backends sit on (198.18.3.0/24 behind the router); absent with backendNetwork l2. */
export const BACKEND_SEGMENT = 'backends';

export function namespaceOf(id: string, host: string): string {
  return `${LAB_PREFIX}${id}-${host}`;
}

/**
 * The lab id a namespace name has the shape of (`l4f-<id>-<host>`), undefined if none. Only a shape: another tool's
 * names can have it too (containerlab's `<prefix>-<lab>-<node>`), so `down --all` also wants the lab's state or
 * containers before it takes one for a lab (runtime/resources.ts).
 */
export function labIdOfNamespace(namespace: string): string | undefined {
  return new RegExp(`^${LAB_PREFIX}(${LAB_ID_CHARS})-`).exec(namespace)?.[1];
}

/** The root-namespace end of the control link; at most 15 characters (IFNAMSIZ). */
export function hostIfaceOf(id: string): string {
  return `${LAB_PREFIX}${id}-h`;
}

export function nodeName(index: number): string {
  return `node${index}`;
}

export function backendName(index: number): string {
  return `backend${index}`;
}

function clientNames(count: number): string[] {
  return count === 1 ? ['client'] : Array.from({ length: count }, (_, i) => `client${i + 1}`);
}

function checkCount(field: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new LabError('OPTION_INVALID', `${field} ${value} is not an integer in ${min}..${max}`);
  }
}

export function buildTopology(options: TopologyOptions = {}): Topology {
  const id = options.id ?? DEFAULT_LAB_ID;
  if (!isLabId(id)) throw new LabError('OPTION_INVALID', `lab id "${id}" must be ${LAB_ID_RULE}`);
  // Counts are checked before anything is made of them: `--nodes 1e10` must name the option, not fail in Array.from.
  if (options.nodeIndexes === undefined) checkCount('nodes', options.nodes ?? DEFAULT_NODES, 1, MAX_NODES);
  const nodeIndexes = [...(options.nodeIndexes ?? range(1, options.nodes ?? DEFAULT_NODES))].sort((a, b) => a - b);
  const backends = options.backends ?? DEFAULT_BACKENDS;
  const clients = options.clients ?? 1;
  const slot = options.controlSlot ?? 0;
  checkCount('nodes', nodeIndexes.length, 1, MAX_NODES);
  for (const i of nodeIndexes) checkCount('node index', i, 1, MAX_NODES);
  // A repeated index would give two hosts one name, namespace and address.
  const repeated = nodeIndexes.find((i, k) => nodeIndexes[k + 1] === i);
  if (repeated !== undefined) throw new LabError('OPTION_INVALID', `node index ${repeated} appears twice`);
  checkCount('backends', backends, 1, MAX_BACKENDS);
  checkCount('clients', clients, 1, 16);
  checkCount('controlSlot', slot, 0, 255);
  if (options.bfd) {
    checkCount('bfd.intervalMs', options.bfd.intervalMs, ...BFD_INTERVAL_MS_RANGE);
    checkCount('bfd.multiplier', options.bfd.multiplier, ...BFD_MULTIPLIER_RANGE);
  }
  const dataPath = dataPathOf(options);
  const routed = dataPath.backendNetwork === 'routed';
  const etcdMemberCount = options.etcdMembers ?? DEFAULT_ETCD_MEMBERS;
  if (!ETCD_MEMBER_COUNTS.includes(etcdMemberCount)) {
    throw new LabError(
      'OPTION_INVALID',
      `etcdMembers ${etcdMemberCount} is not one of ${ETCD_MEMBER_COUNTS.join(', ')}`,
    );
  }

  const ns = (h: string) => namespaceOf(id, h);
  const nodes = nodeIndexes.map(nodeName);
  const backendNames = range(1, backends).map(backendName);
  const clientList = clientNames(clients);
  const hosts: LabHost[] = [
    { name: 'host', kind: 'host', namespace: undefined },
    ...clientList.map((name) => ({ name, kind: 'client' as const, namespace: ns(name) })),
    { name: 'router', kind: 'router', namespace: ns('router') },
    ...nodes.map((name) => ({ name, kind: 'node' as const, namespace: ns(name) })),
    ...backendNames.map((name) => ({ name, kind: 'backend' as const, namespace: ns(name) })),
    { name: 'control', kind: 'control', namespace: ns('control') },
  ];

  const access: Segment[] = clientList.map((name, i) => ({
    name: `access-${name}`,
    ipv4Prefix: `198.18.1.${4 * i}/30`,
    ipv6Prefix: `2001:db8:1:${i + 1}::/64`,
    attachments: [
      { host: 'router', iface: `a-${name}`, ipv4: `198.18.1.${4 * i + 1}`, ipv6: `2001:db8:1:${i + 1}::1` },
      { host: name, iface: 'eth0', ipv4: `198.18.1.${4 * i + 2}`, ipv6: `2001:db8:1:${i + 1}::2` },
    ],
  }));
  const fabric: Segment = {
    name: 'fabric',
    ipv4Prefix: '198.18.2.0/24',
    ipv6Prefix: '2001:db8:2::/64',
    hub: 'router',
    attachments: [
      { host: 'router', iface: 'br0', ipv4: '198.18.2.1', ipv6: '2001:db8:2::1' },
      ...nodeIndexes.map((i) => ({
        host: nodeName(i),
        iface: 'eth0',
        ipv4: `198.18.2.${10 + i}`,
        ipv6: `2001:db8:2::${(0x10 + i).toString(16)}`,
      })),
      ...(routed
        ? []
        : range(1, backends).map((j) => ({
            host: backendName(j),
            iface: 'eth0',
            ipv4: `198.18.2.${100 + j}`,
            ipv6: `2001:db8:2::1:${j.toString(16)}`,
          }))),
    ],
  };
  // Routed backends: their own subnet, one hop behind the router; the nodes reach them only through it.
  const backendSegment: Segment[] = routed
    ? [
        {
          name: BACKEND_SEGMENT,
          ipv4Prefix: '198.18.3.0/24',
          ipv6Prefix: '2001:db8:3::/64',
          hub: 'router',
          attachments: [
            { host: 'router', iface: 'br1', ipv4: '198.18.3.1', ipv6: '2001:db8:3::1' },
            ...range(1, backends).map((j) => ({
              host: backendName(j),
              iface: 'eth0',
              ipv4: `198.18.3.${100 + j}`,
              ipv6: `2001:db8:3::1:${j.toString(16)}`,
            })),
          ],
        },
      ]
    : [];
  const controlAddress = `198.19.${slot}.2`;
  const etcdMembers = etcdMembersOf(controlAddress, etcdMemberCount);
  const control: Segment = {
    name: 'control',
    ipv4Prefix: `198.19.${slot}.0/24`,
    hub: 'control',
    attachments: [
      { host: 'control', iface: 'br0', ipv4: controlAddress },
      { host: 'host', iface: hostIfaceOf(id), ipv4: `198.19.${slot}.1` },
      ...nodeIndexes.map((i) => ({ host: nodeName(i), iface: 'eth1', ipv4: `198.19.${slot}.${10 + i}` })),
    ],
  };

  return {
    id,
    controlSlot: slot,
    nodeIndexes,
    hosts,
    segments: [...access, fabric, ...backendSegment, control],
    vips: [VIP_TCP, VIP_UDP, VIP_TCP6],
    dataPath,
    bgp: {
      routerAsn: ROUTER_ASN,
      nodeAsn: NODE_ASN,
      routerAddress: '198.18.2.1',
      holdTimeS: BGP_HOLD_TIME_S,
      keepaliveS: BGP_KEEPALIVE_S,
      password: BGP_PASSWORD,
      bfd: options.bfd ? { intervalMs: options.bfd.intervalMs, multiplier: options.bfd.multiplier } : undefined,
    },
    control: {
      address: controlAddress,
      etcdEndpoints: etcdMembers.map((m) => m.clientUrl),
      etcdMembers,
      natsUrl: `nats://${controlAddress}:${NATS_PORT}`,
    },
  };
}

function etcdMembersOf(address: string, count: number): EtcdMember[] {
  return range(1, count).map((i) => {
    const step = (i - 1) * ETCD_MEMBER_PORT_STEP;
    return {
      name: etcdMemberName(i),
      clientPort: ETCD_CLIENT_PORT + step,
      clientUrl: `http://${address}:${ETCD_CLIENT_PORT + step}`,
      peerUrl: `http://127.0.0.1:${ETCD_PEER_PORT + step}`,
    };
  });
}

/** Whether `name` is one of the lab's etcd members: `lab kill` / `lab restart` take a node or an etcd member. */
export function isEtcdMember(topology: Topology, name: string): boolean {
  return topology.control.etcdMembers.some((m) => m.name === name);
}

/** The lab's etcd member `name`; throws naming the members if there is none. */
export function etcdMemberOf(topology: Topology, name: string): EtcdMember {
  const member = topology.control.etcdMembers.find((m) => m.name === name);
  if (member) return member;
  const names = topology.control.etcdMembers.map((m) => m.name).join(', ');
  throw new LabError('HOST_UNKNOWN', `"${name}" is not an etcd member of lab "${topology.id}" (members: ${names})`);
}

function range(from: number, to: number): number[] {
  return Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);
}

export {
  attachmentOf,
  backendAttachment,
  backendSegmentOf,
  hostOf,
  hostsOfKind,
  segmentOf,
} from './lookup.js';

export function prefixLength(cidr: string): number {
  return Number(cidr.split('/')[1]);
}

/** The index the next add-node gets: one past the highest in use, so names are never reused within a lab. */
export function nextNodeIndex(topology: Topology): number {
  return Math.max(0, ...topology.nodeIndexes) + 1;
}
