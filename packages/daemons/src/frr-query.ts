/** Talking to a running FRR router: vtysh commands, session states, and the routes zebra put in the kernel. */
import { run } from '@l4fleet/process';

const VTYSH_TIMEOUT_MS = 10_000;
const IP_TIMEOUT_MS = 5_000;

/** Runs one or more vtysh commands (`-c` each, in order) in the router's namespace; returns the text output. */
export async function vtysh(namespace: string | undefined, vtyDir: string, ...commands: string[]): Promise<string> {
  const argv = ['vtysh', '--vty_socket', vtyDir, ...commands.flatMap((c) => ['-c', c])];
  return (await run(argv, { namespace, timeoutMs: VTYSH_TIMEOUT_MS })).stdout;
}

/** Adds `address` to peer group `group` of the running bgpd (idempotent); FRR dials it within a second. */
export async function addFrrNeighbor(
  namespace: string | undefined,
  vtyDir: string,
  asn: number,
  group: string,
  address: string,
): Promise<void> {
  await vtysh(namespace, vtyDir, 'configure terminal', `router bgp ${asn}`, `neighbor ${address} peer-group ${group}`);
}

export interface BgpNeighborState {
  readonly address: string;
  /** FRR's state name, e.g. `Established`, `Active`. */
  readonly state: string;
  readonly prefixesReceived: number;
}

type Peers = Record<string, { state?: string; pfxRcd?: number }>;

/**
 * Parses `show bgp [ipv4 unicast] summary json`: one family is flat (`{ peers }`), all families nest
 * (`{ ipv4Unicast: { peers }, ipv6Unicast: { peers } }`); a neighbour in several families is listed once, with
 * its first family's state.
 */
export function parseBgpSummary(json: string): BgpNeighborState[] {
  const doc = JSON.parse(json.trim() || '{}') as Record<string, unknown> & { peers?: Peers };
  const families = doc.peers ? [doc] : (Object.values(doc) as { peers?: Peers }[]);
  const seen = new Map<string, BgpNeighborState>();
  for (const af of families) {
    for (const [address, p] of Object.entries(af?.peers ?? {})) {
      if (!seen.has(address)) {
        seen.set(address, { address, state: p.state ?? 'Unknown', prefixesReceived: p.pfxRcd ?? 0 });
      }
    }
  }
  return [...seen.values()];
}

export interface KernelRoute {
  /** Gateways of the installed route, sorted; one entry for a single-path route. */
  readonly nexthops: string[];
  /** Nexthop group id when FRR installed the route through one (FRR 8.4 does). */
  readonly nhid: number | undefined;
}

interface IpRoute {
  gateway?: string;
  nhid?: number;
  nexthops?: { gateway?: string }[];
}

interface IpNexthop {
  id: number;
  gateway?: string;
  group?: { id: number }[];
}

/**
 * The kernel's route for `prefix` in `namespace`, or undefined when there is none. FRR 8.4 installs multipath
 * routes as nexthop groups (`nhid`), which `ip route` does not always expand, so groups are resolved through
 * `ip nexthop`.
 */
export async function kernelRoute(namespace: string | undefined, prefix: string): Promise<KernelRoute | undefined> {
  const family = prefix.includes(':') ? '-6' : '-4';
  const opts = { namespace, allowFailure: true, timeoutMs: IP_TIMEOUT_MS };
  const r = await run(['ip', family, '-j', 'route', 'show', prefix], opts);
  const route = (JSON.parse(r.stdout.trim() || '[]') as IpRoute[])[0];
  if (!route) return undefined;
  const gateways = (list: readonly { gateway?: string | undefined }[]) =>
    list.flatMap((n) => (n.gateway ? [n.gateway] : [])).sort();
  if (route.nexthops && route.nexthops.length > 0) return { nexthops: gateways(route.nexthops), nhid: route.nhid };
  if (route.gateway) return { nexthops: [route.gateway], nhid: route.nhid };
  if (route.nhid === undefined) return { nexthops: [], nhid: undefined };
  const all = await run(['ip', '-j', 'nexthop', 'show'], opts);
  const byId = new Map((JSON.parse(all.stdout.trim() || '[]') as IpNexthop[]).map((n) => [n.id, n]));
  const top = byId.get(route.nhid);
  const members = top?.group ? top.group.map((g) => byId.get(g.id)) : [top];
  return { nexthops: gateways(members.flatMap((m) => (m ? [m] : []))), nhid: route.nhid };
}
