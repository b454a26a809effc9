/**
 * `lab export --format containerlab`: the same topology model as a containerlab topology file. containerlab reserves
 * eth0 for its management network, so data interfaces are numbered eth1.. in segment order; multi-host segments become
 * `bridge` nodes (Linux bridges containerlab expects to exist on the host), and addresses are set by `exec` commands.
 * The files the nodes bind (the router's bgpd.conf, each node's agent.yaml) are containerlabBindFiles'.
 * Checked against containerlab's own JSON schema in test/lab-export.test.ts; containerlab itself cannot run here.
 */
import { stringify } from 'yaml';
import { agentYaml } from '../runtime/agent.js';
import { etcdArgv, natsArgv } from '../runtime/control.js';
import { bgpdConfig } from '../runtime/frr.js';
import { backendSegmentOf, type LabHost, prefixLength, type Segment, type Topology } from './model.js';

/**
 * eth0 is containerlab's management network and holds the default route, so each host routes the lab's ranges via
 * the router instead, in both families as the netns plan's default routes do (netns-plan.ts): the client the VIPs and
 * the lab's networks (IPv6: the lab's whole 2001:db8::/32, RFC 3849, which holds the IPv6 VIP), the nodes and
 * backends the clients' access segments (198.18.1.0/24; IPv6 2001:db8:1:<n>::/64, model.ts).
 */
const CLIENT_ROUTES = { ipv4: ['198.51.100.0/24', '198.18.0.0/15'], ipv6: ['2001:db8::/32'] };
const ACCESS_ROUTES = { ipv4: ['198.18.1.0/24'], ipv6: ['2001:db8:1::/48'] };

/** `ip route replace` of each prefix via the router's address of its family on `segment`. */
function routesVia(topology: Topology, segment: string, prefixes: typeof CLIENT_ROUTES): string[] {
  const gw = topology.segments.find((s) => s.name === segment)?.attachments.find((a) => a.host === 'router');
  if (!gw) return [];
  return [
    ...prefixes.ipv4.map((p) => `ip route replace ${p} via ${gw.ipv4}`),
    ...(gw.ipv6 ? prefixes.ipv6.map((p) => `ip -6 route replace ${p} via ${gw.ipv6}`) : []),
  ];
}

/** Locally built images (deploy/docker); no registry is involved. */
export const IMAGES: Readonly<Record<string, string>> = {
  client: 'l4fleet/backend:latest',
  router: 'l4fleet/router:latest',
  node: 'l4fleet/agent:latest',
  backend: 'l4fleet/backend:latest',
  control: 'l4fleet/control:latest',
};

type ClabNode = Record<string, unknown>;

/** The control container's data dir, as the Docker runtime's (runtime/docker.ts CONTROL_DATA_DIR). */
const CONTROL_DATA_DIR = '/var/lib/l4fleet';

function shortCode(host: string): string {
  const m = /^([a-z]+?)(\d*)$/.exec(host);
  return m ? `${m[1]?.[0] ?? 'x'}${m[2] ?? ''}` : host.slice(0, 4);
}

/** containerlab bridge names live on the host: keep them within IFNAMSIZ (15). */
export function bridgeName(topology: Topology, segment: Segment): string {
  return `l4f-${topology.id}-${segment.name === 'fabric' ? 'fab' : 'ctl'}`;
}

/** Each host's data interface per segment (`host/segment` -> eth1..): eth0 is containerlab's management network. */
export function containerlabInterfaces(topology: Topology): ReadonlyMap<string, string> {
  const count = new Map<string, number>();
  const out = new Map<string, string>();
  for (const segment of topology.segments) {
    const members = segment.attachments.filter((a) => a.host !== 'host');
    if (segment.hub === undefined && members.length < 2) continue;
    for (const a of segment.hub === undefined ? members.slice(0, 2) : members) {
      const n = (count.get(a.host) ?? 0) + 1;
      count.set(a.host, n);
      out.set(`${a.host}/${segment.name}`, `eth${n}`);
    }
  }
  return out;
}

export function toContainerlab(topology: Topology): Record<string, unknown> {
  const ifaces = containerlabInterfaces(topology);
  const execs = new Map<string, string[]>();
  const ifaceOf = (host: string, segment: Segment): string => ifaces.get(`${host}/${segment.name}`) ?? 'eth0';
  const exec = (host: string, cmd: string) => execs.set(host, [...(execs.get(host) ?? []), cmd]);
  const links: { endpoints: string[] }[] = [];
  const bridges: string[] = [];

  for (const segment of topology.segments) {
    const len = prefixLength(segment.ipv4Prefix);
    const len6 = segment.ipv6Prefix ? prefixLength(segment.ipv6Prefix) : undefined;
    const members = segment.attachments.filter((a) => a.host !== 'host');
    const addAddresses = (host: string, iface: string, a: (typeof members)[number]) => {
      exec(host, `ip addr add ${a.ipv4}/${len} dev ${iface}`);
      if (a.ipv6 && len6) exec(host, `ip -6 addr add ${a.ipv6}/${len6} dev ${iface}`);
    };
    if (segment.hub === undefined) {
      const [a, b] = members;
      if (!a || !b) continue;
      const ia = ifaceOf(a.host, segment);
      const ib = ifaceOf(b.host, segment);
      links.push({ endpoints: [`${a.host}:${ia}`, `${b.host}:${ib}`] });
      addAddresses(a.host, ia, a);
      addAddresses(b.host, ib, b);
      continue;
    }
    const bridge = bridgeName(topology, segment);
    bridges.push(bridge);
    for (const a of members) {
      const iface = ifaceOf(a.host, segment);
      links.push({ endpoints: [`${a.host}:${iface}`, `${bridge}:${topology.id}-${shortCode(a.host)}`] });
      addAddresses(a.host, iface, a);
    }
  }

  const nodes: Record<string, ClabNode> = {};
  for (const host of topology.hosts) {
    if (host.kind === 'host') continue;
    nodes[host.name] = clabNode(topology, host, execs.get(host.name) ?? []);
  }
  for (const bridge of bridges) nodes[bridge] = { kind: 'bridge' };
  return {
    name: `l4f-${topology.id}`,
    // containerlab names containers and their /run/netns links <prefix>-<name>-<node>: with prefix l4f they had the
    // netns lab's shape (l4f-<id>-...) and `lab down --all` took them for lab "l4f"'s.
    prefix: 'clab',
    topology: { nodes, links },
  };
}

function clabNode(topology: Topology, host: LabHost, execs: string[]): ClabNode {
  const node: ClabNode = { kind: 'linux', image: IMAGES[host.kind] ?? IMAGES.backend };
  const routes: string[] = [];
  if (host.kind === 'client') {
    // The backend image's entrypoint is the identity server: a client only needs to stay up (the Docker runtime's
    // client runs `sleep infinity` too).
    node.entrypoint = 'sleep';
    node.cmd = 'infinity';
    routes.push(...routesVia(topology, `access-${host.name}`, CLIENT_ROUTES));
    node.sysctls = { 'net.core.txrehash': 0 };
  }
  if (host.kind === 'router') {
    node.sysctls = {
      'net.ipv4.ip_forward': 1,
      'net.ipv6.conf.all.forwarding': 1,
      'net.ipv4.fib_multipath_hash_policy': 1,
      'net.ipv6.fib_multipath_hash_policy': 1,
      'net.ipv4.conf.all.rp_filter': 0,
    };
    node.binds = ['router/bgpd.conf:/etc/frr/bgpd.conf'];
  }
  if (host.kind === 'backend') {
    // DSR: the VIPs live on lo and the backend must not answer ARP for them (arp_ignore/arp_announce).
    node.sysctls = { 'net.ipv4.conf.all.arp_ignore': 1, 'net.ipv4.conf.all.arp_announce': 2 };
    node.env = { L4FLEET_BACKEND_NAME: host.name, L4FLEET_VIPS: topology.vips.map(vipSpec).join(',') };
    // The VIPs on lo are the entrypoint's (from L4FLEET_VIPS): an `ip addr add` here as well failed (File exists).
    routes.push(...routesVia(topology, backendSegmentOf(topology).name, ACCESS_ROUTES));
  }
  if (host.kind === 'node') {
    node.binds = [`${host.name}/agent.yaml:/etc/l4fleet/agent.yaml`];
    // containerlab adds the interfaces and runs `exec` after the start: the agent image's entrypoint waits for them.
    const own = topology.segments.flatMap((seg) => seg.attachments.filter((a) => a.host === host.name));
    node.env = { L4FLEET_NODE: host.name, L4FLEET_WAIT_ADDRESSES: own.map((a) => a.ipv4).join(',') };
    routes.push(...routesVia(topology, 'fabric', ACCESS_ROUTES));
  }
  if (host.kind === 'control') {
    node.env = { ETCD_LISTEN: topology.control.etcdEndpoints.join(','), NATS_URL: topology.control.natsUrl };
    node.cmd = controlCommand(topology, host.name);
  }
  const all = [...execs, ...routes];
  if (all.length > 0) node.exec = all;
  return node;
}

/**
 * The control image has no command of its own: etcd's members and NATS as the Docker runtime starts them, once the
 * `exec` commands have put the control address on (containerlab runs them after the start; etcd and NATS bind it).
 */
function controlCommand(topology: Topology, host: string): string {
  const address = topology.segments.find((s) => s.name === 'control')?.attachments.find((a) => a.host === host)?.ipv4;
  const wait = address ? `until ip -4 addr show | grep -q "inet ${address}/"; do sleep 0.2; done; ` : '';
  const etcd = topology.control.etcdMembers.map((m) => `${etcdArgv(topology, CONTROL_DATA_DIR, m).join(' ')} & `);
  const nats = natsArgv(topology, CONTROL_DATA_DIR).join(' ');
  return `sh -c '${wait}mkdir -p ${CONTROL_DATA_DIR} && ${etcd.join('')}exec ${nats}'`;
}

/**
 * The files the topology's nodes bind, by path relative to the topology file: the router's bgpd.conf and each
 * node's agent.yaml, its interface the node's fabric interface under containerlab (the netns lab's is eth0).
 */
export function containerlabBindFiles(topology: Topology): ReadonlyMap<string, string> {
  const ifaces = containerlabInterfaces(topology);
  const files = new Map<string, string>([['router/bgpd.conf', bgpdConfig(topology)]]);
  for (const host of topology.hosts.filter((h) => h.kind === 'node')) {
    const iface = ifaces.get(`${host.name}/fabric`) ?? 'eth1';
    files.set(
      `${host.name}/agent.yaml`,
      agentYaml(topology, host.name).replace(/^(\s+interface:) .*$/m, `$1 ${iface}`),
    );
  }
  return files;
}

export function vipSpec(vip: { protocol: string; address: string; port: number }): string {
  return vip.address.includes(':')
    ? `${vip.protocol}:[${vip.address}]:${vip.port}`
    : `${vip.protocol}:${vip.address}:${vip.port}`;
}

export function containerlabYaml(topology: Topology): string {
  const header = [
    `# containerlab topology of l4fleet lab "${topology.id}", generated by \`l4fleet lab export --format containerlab\`.`,
    '# Images are built locally from deploy/docker (no registry). The router and the nodes bind router/bgpd.conf and',
    '# nodeN/agent.yaml beside this file: for the default lab write them with',
    '#   node deploy/containerlab/write-bind-files.mjs DIR  (from a built checkout; DIR: where this file is)',
    '# (any other topology: containerlabBindFiles in lab/src/topology/containerlab.ts). Bridges must exist on the',
    '# host first:',
    ...topology.segments
      .filter((s) => s.hub)
      .map(
        (s) => `#   ip link add ${bridgeName(topology, s)} type bridge && ip link set ${bridgeName(topology, s)} up`,
      ),
    `# Containers are named clab-l4f-${topology.id}-<node> (not l4f-<id>-<node>, the lab's own namespace names).`,
    `# The host reaches etcd/NATS with: ip addr add ${topology.segments.find((s) => s.name === 'control')?.attachments.find((a) => a.host === 'host')?.ipv4}/24 dev l4f-${topology.id}-ctl`,
    '',
  ].join('\n');
  return header + stringify(toContainerlab(topology), { lineWidth: 0 });
}
