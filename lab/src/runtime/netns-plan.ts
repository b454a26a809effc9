/**
 * The netns runtime's wiring as shell text, generated from the topology model (pure, unit-tested): namespaces,
 * veths, bridges, addresses, sysctls and routes. Run as one `sh` per step: one process instead of hundreds of `ip`s.
 */
import { createHash } from 'node:crypto';
import { vipsOnBackendLo } from '../topology/data-path.js';
import {
  type Attachment,
  attachmentOf,
  BACKEND_SEGMENT,
  backendSegmentOf,
  hostOf,
  type LabHost,
  prefixLength,
  type Segment,
  type Topology,
} from '../topology/model.js';
import { backendAdvmss } from './backend-mss.js';

/** Name of a bridge port in the hub namespace; unique per hub and within IFNAMSIZ (15). */
export function hubPortName(segment: Segment, host: string): string {
  const letter = segment.name === 'fabric' ? 'f' : segment.name === BACKEND_SEGMENT ? 'b' : 'c';
  return `${letter}-${host}`.slice(0, 15);
}

/**
 * The hub bridge's own MAC: fixed, locally administered (02:...), from the lab id and the segment. A bridge without
 * one takes its lowest port's MAC and changes it when that port goes (a node container's veth dies with it): hosts
 * on the segment then send to a MAC nobody has until they re-resolve the hub. The likely cause of every flow stalling
 * 5.8-6.9 s after a node container kill (test/lab-docker-faults.int.test.ts, 2 of 16 runs before; 0 of 10 after).
 */
export function hubBridgeMac(topology: Topology, segment: Segment): string {
  const h = createHash('sha256').update(`${topology.id}/${segment.name}`).digest();
  return ['02', ...[...h.subarray(0, 5)].map((b) => b.toString(16).padStart(2, '0'))].join(':');
}

function ns(topology: Topology, host: string): string | undefined {
  return hostOf(topology, host).namespace;
}

function ipn(namespace: string | undefined): string {
  return namespace ? `ip -n ${namespace}` : 'ip';
}

function addressLines(namespace: string | undefined, a: Attachment, segment: Segment): string[] {
  const lines = [`${ipn(namespace)} addr replace ${a.ipv4}/${prefixLength(segment.ipv4Prefix)} dev ${a.iface}`];
  if (a.ipv6 && segment.ipv6Prefix) {
    lines.push(`${ipn(namespace)} -6 addr replace ${a.ipv6}/${prefixLength(segment.ipv6Prefix)} dev ${a.iface} nodad`);
  }
  lines.push(`${ipn(namespace)} link set ${a.iface} up`);
  return lines;
}

/** Creates one host's namespace (idempotent: `ip netns add` of an existing one fails, so it is checked first). */
export function namespaceScript(host: LabHost): string[] {
  if (!host.namespace) return [];
  return [
    `[ -e /run/netns/${host.namespace} ] || ip netns add ${host.namespace}`,
    `ip -n ${host.namespace} link set lo up`,
  ];
}

/** Wires one attachment of a segment (veth to the hub's bridge or the point-to-point peer). */
export function attachmentScript(topology: Topology, segment: Segment, a: Attachment): string[] {
  const target = ns(topology, a.host);
  const netnsArg = target ? `netns ${target}` : 'netns 1';
  if (segment.hub === undefined) {
    // Point-to-point: created once, from the first attachment.
    const [first, second] = segment.attachments;
    if (!first || !second || a !== first) return [];
    const nsA = ns(topology, first.host);
    const nsB = ns(topology, second.host);
    return [
      `${ipn(nsA)} link del ${first.iface} 2>/dev/null || true`,
      `${ipn(nsA)} link add ${first.iface} type veth peer name ${second.iface} ${nsB ? `netns ${nsB}` : 'netns 1'}`,
      ...addressLines(nsA, first, segment),
      ...addressLines(nsB, second, segment),
    ];
  }
  const hub = ns(topology, segment.hub);
  const hubAttachment = attachmentOf(topology, segment.name, segment.hub);
  if (a.host === segment.hub) {
    return [
      `${ipn(hub)} link show ${a.iface} >/dev/null 2>&1 || ` +
        `${ipn(hub)} link add ${a.iface} address ${hubBridgeMac(topology, segment)} type bridge`,
      ...addressLines(hub, a, segment),
    ];
  }
  const port = hubPortName(segment, a.host);
  return [
    `${ipn(hub)} link del ${port} 2>/dev/null || true`,
    `${ipn(hub)} link add ${port} type veth peer name ${a.iface} ${netnsArg}`,
    `${ipn(hub)} link set ${port} master ${hubAttachment.iface} up`,
    ...addressLines(target, a, segment),
  ];
}

function sysctl(namespace: string, settings: Record<string, number>): string[] {
  const args = Object.entries(settings)
    .map(([k, v]) => `-w ${k}=${v}`)
    .join(' ');
  return [`ip netns exec ${namespace} sysctl -q ${args}`];
}

/** Per-host kernel settings and routes, after the links exist. */
export function hostConfigScript(topology: Topology, host: LabHost): string[] {
  const n = host.namespace;
  if (!n) return [];
  const fabricGw = attachmentOf(topology, 'fabric', 'router');
  switch (host.kind) {
    case 'client': {
      const gw = attachmentOf(topology, `access-${host.name}`, 'router');
      return [
        // platform-facts: without this TCP re-hashes its flow label/hash after an RTO and ECMP moves the flow by itself.
        ...sysctl(n, { 'net.core.txrehash': 0, 'net.ipv6.conf.all.accept_dad': 0 }),
        `ip -n ${n} route replace default via ${gw.ipv4}`,
        `ip -n ${n} -6 route replace default via ${gw.ipv6}`,
      ];
    }
    case 'router':
      return sysctl(n, {
        'net.ipv4.ip_forward': 1,
        'net.ipv6.conf.all.forwarding': 1,
        // L4 hash: per-flow ECMP over the nodes (5-tuple), not per source/destination pair.
        'net.ipv4.fib_multipath_hash_policy': 1,
        'net.ipv6.fib_multipath_hash_policy': 1,
        'net.ipv4.conf.all.rp_filter': 0,
        'net.ipv4.conf.default.rp_filter': 0,
        'net.ipv6.conf.all.accept_dad': 0,
      });
    case 'node':
      return [
        ...sysctl(n, {
          'net.ipv4.conf.all.rp_filter': 0,
          'net.ipv4.conf.default.rp_filter': 0,
          // NAT forwards through the node's IP stack (the driver refuses a NAT VIP without it: design note 0012).
          ...(topology.dataPath.forwarding === 'nat'
            ? { 'net.ipv4.ip_forward': 1, 'net.ipv6.conf.all.forwarding': 1 }
            : {}),
        }),
        `ip -n ${n} route replace default via ${fabricGw.ipv4}`,
        `ip -n ${n} -6 route replace default via ${fabricGw.ipv6}`,
      ];
    case 'backend': {
      // Routed backends: their gateway is the router's address on their own segment.
      const gw = attachmentOf(topology, backendSegmentOf(topology).name, 'router');
      // Encapsulated forwarding: an MSS that leaves room for the nodes' outer headers (backend-mss.ts).
      const advmss = (family: 4 | 6) => {
        const mss = backendAdvmss(topology.dataPath.forwarding, family);
        return mss === undefined ? '' : ` advmss ${mss}`;
      };
      const lines = [
        // DSR: the VIPs sit on lo; the backend must neither answer ARP for them nor use them as ARP source.
        ...sysctl(n, {
          'net.ipv4.conf.all.arp_ignore': 1,
          'net.ipv4.conf.all.arp_announce': 2,
          'net.ipv4.conf.all.rp_filter': 0,
          'net.ipv4.conf.default.rp_filter': 0,
        }),
        `ip -n ${n} route replace default via ${gw.ipv4}${advmss(4)}`,
        `ip -n ${n} -6 route replace default via ${gw.ipv6}${advmss(6)}`,
      ];
      // Encapsulated forwarding: `l4fleet backend setup` puts the VIPs on lo (backend-setup.ts), as on a real host.
      // NAT: the members see their own address as the destination; no VIP on the backend.
      if (!vipsOnBackendLo(topology.dataPath)) return lines;
      for (const vip of topology.vips) {
        const v6 = vip.address.includes(':');
        lines.push(
          `ip -n ${n} ${v6 ? '-6 ' : ''}addr replace ${vip.address}/${v6 ? 128 : 32} dev lo${v6 ? ' nodad' : ''}`,
        );
      }
      return lines;
    }
    default:
      return [];
  }
}

/** Everything for one host: its namespace, its attachments on every segment, then its settings. */
export function hostScript(topology: Topology, hostName: string): string {
  const host = hostOf(topology, hostName);
  const lines = [...namespaceScript(host)];
  for (const segment of topology.segments) {
    for (const a of segment.attachments) {
      if (a.host === hostName) lines.push(...attachmentScript(topology, segment, a));
    }
  }
  lines.push(...hostConfigScript(topology, host));
  return lines.join('\n');
}

/** The whole lab in dependency order: hubs (and their bridges) first, then everyone else. */
export function topologyScript(topology: Topology): string {
  const hubs = new Set(topology.segments.flatMap((s) => (s.hub ? [s.hub] : [])));
  const order = [
    ...topology.hosts.filter((h) => hubs.has(h.name)),
    ...topology.hosts.filter((h) => !hubs.has(h.name) && h.kind !== 'host'),
    ...topology.hosts.filter((h) => h.kind === 'host'),
  ];
  const lines: string[] = [];
  for (const h of order) lines.push(...namespaceScript(h));
  for (const h of order) {
    for (const segment of topology.segments) {
      for (const a of segment.attachments) if (a.host === h.name) lines.push(...attachmentScript(topology, segment, a));
    }
  }
  for (const h of order) lines.push(...hostConfigScript(topology, h));
  return lines.join('\n');
}
