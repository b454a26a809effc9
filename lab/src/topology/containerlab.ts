/**
 * `lab export --format containerlab`: the same topology model as a containerlab topology file. containerlab reserves
 * eth0 for its management network, so data interfaces are numbered eth1.. in segment order; multi-host segments become
 * `bridge` nodes (Linux bridges containerlab expects to exist on the host), and addresses are set by `exec` commands.
 * Checked against containerlab's own JSON schema in test/lab-export.test.ts; containerlab itself cannot run here.
 */
import { stringify } from 'yaml';
import { type LabHost, prefixLength, type Segment, type Topology } from './model.js';

/** Locally built images (deploy/docker); no registry is involved. */
export const IMAGES: Readonly<Record<string, string>> = {
  client: 'l4fleet/backend:latest',
  router: 'l4fleet/router:latest',
  node: 'l4fleet/agent:latest',
  backend: 'l4fleet/backend:latest',
  control: 'l4fleet/control:latest',
};

type ClabNode = Record<string, unknown>;

function shortCode(host: string): string {
  const m = /^([a-z]+?)(\d*)$/.exec(host);
  return m ? `${m[1]?.[0] ?? 'x'}${m[2] ?? ''}` : host.slice(0, 4);
}

/** containerlab bridge names live on the host: keep them within IFNAMSIZ (15). */
export function bridgeName(topology: Topology, segment: Segment): string {
  return `l4f-${topology.id}-${segment.name === 'fabric' ? 'fab' : 'ctl'}`;
}

export function toContainerlab(topology: Topology): Record<string, unknown> {
  const ifaceIndex = new Map<string, number>();
  const execs = new Map<string, string[]>();
  const nextIface = (host: string): string => {
    const n = (ifaceIndex.get(host) ?? 0) + 1;
    ifaceIndex.set(host, n);
    return `eth${n}`;
  };
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
      const ia = nextIface(a.host);
      const ib = nextIface(b.host);
      links.push({ endpoints: [`${a.host}:${ia}`, `${b.host}:${ib}`] });
      addAddresses(a.host, ia, a);
      addAddresses(b.host, ib, b);
      continue;
    }
    const bridge = bridgeName(topology, segment);
    bridges.push(bridge);
    for (const a of members) {
      const iface = nextIface(a.host);
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
    prefix: 'l4f',
    topology: { nodes, links },
  };
}

function clabNode(topology: Topology, host: LabHost, execs: string[]): ClabNode {
  const node: ClabNode = { kind: 'linux', image: IMAGES[host.kind] ?? IMAGES.backend };
  const router = topology.bgp.routerAddress;
  const routes: string[] = [];
  if (host.kind === 'client') {
    const access = topology.segments.find((s) => s.name === `access-${host.name}`);
    const gw = access?.attachments.find((a) => a.host === 'router');
    if (gw)
      routes.push(`ip route replace 198.51.100.0/24 via ${gw.ipv4}`, `ip route replace 198.18.0.0/15 via ${gw.ipv4}`);
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
    routes.push(`ip route replace 198.18.1.0/24 via ${router}`);
    for (const vip of topology.vips)
      routes.push(`ip addr add ${vip.address}/${vip.address.includes(':') ? 128 : 32} dev lo`);
  }
  if (host.kind === 'node') {
    node.binds = [`${host.name}/agent.yaml:/etc/l4fleet/agent.yaml`];
    node.env = { L4FLEET_NODE: host.name };
    routes.push(`ip route replace 198.18.1.0/24 via ${router}`);
  }
  if (host.kind === 'control') {
    node.env = { ETCD_LISTEN: topology.control.etcdEndpoints.join(','), NATS_URL: topology.control.natsUrl };
  }
  const all = [...execs, ...routes];
  if (all.length > 0) node.exec = all;
  return node;
}

export function vipSpec(vip: { protocol: string; address: string; port: number }): string {
  return vip.address.includes(':')
    ? `${vip.protocol}:[${vip.address}]:${vip.port}`
    : `${vip.protocol}:${vip.address}:${vip.port}`;
}

export function containerlabYaml(topology: Topology): string {
  const header = [
    `# containerlab topology of l4fleet lab "${topology.id}", generated by \`l4fleet lab export --format containerlab\`.`,
    '# Images are built locally from deploy/docker (no registry). Bridges must exist on the host first:',
    ...topology.segments
      .filter((s) => s.hub)
      .map(
        (s) => `#   ip link add ${bridgeName(topology, s)} type bridge && ip link set ${bridgeName(topology, s)} up`,
      ),
    `# The host reaches etcd/NATS with: ip addr add ${topology.segments.find((s) => s.name === 'control')?.attachments.find((a) => a.host === 'host')?.ipv4}/24 dev l4f-${topology.id}-ctl`,
    '',
  ].join('\n');
  return header + stringify(toContainerlab(topology), { lineWidth: 0 });
}
