/** `lab status`: what the lab is and how it is doing, as one JSON document. */
import { run } from './exec.js';
import type { LabMode, Runtime } from './state.js';

export interface NodeStatus {
  readonly name: string;
  readonly address: string;
  /** The router's view of the node's BGP session (FRR state name, e.g. `Established`, `Idle`). */
  readonly bgp: string;
  readonly killed: boolean;
  /** From the control plane; null while the lab cannot read it (static mode). */
  readonly drained: boolean | null;
  /** Prefixes in the node's gobgpd RIB, i.e. what it announces. */
  readonly announced: readonly string[];
}

export interface LabStatus {
  readonly id: string;
  readonly runtime: Runtime;
  readonly mode: LabMode;
  readonly etcd: { readonly endpoints: readonly string[] };
  readonly nats: { readonly url: string };
  readonly vips: readonly { name: string; address: string; port: number; protocol: string }[];
  readonly nodes: readonly NodeStatus[];
  /** `failed`: by `lab fail-backend` until `lab restore-backend`. */
  readonly backends: readonly { name: string; address: string; failed: boolean }[];
  readonly clients: readonly { name: string; address: string }[];
  /** Kernel next hops of the router's route to each VIP prefix: one per announcing node (ECMP). */
  readonly router: { readonly asn: number; readonly address: string; readonly nextHops: Record<string, string[]> };
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
 * The router's kernel next hops for `prefix`. FRR 8.4 installs multipath routes as nexthop groups (`nhid`), which
 * `ip route` does not always expand, so groups are resolved through `ip nexthop`.
 */
export async function routerNextHops(namespace: string, prefix: string): Promise<string[]> {
  const family = prefix.includes(':') ? '-6' : '-4';
  const r = await run(['ip', family, '-j', 'route', 'show', prefix], {
    namespace,
    allowFailure: true,
    timeoutMs: 5_000,
  });
  const routes = JSON.parse(r.stdout.trim() || '[]') as IpRoute[];
  const route = routes[0];
  if (!route) return [];
  if (route.nexthops && route.nexthops.length > 0)
    return route.nexthops.flatMap((n) => (n.gateway ? [n.gateway] : [])).sort();
  if (route.nhid !== undefined) {
    const all = await run(['ip', '-j', 'nexthop', 'show'], { namespace, allowFailure: true, timeoutMs: 5_000 });
    const list = JSON.parse(all.stdout.trim() || '[]') as IpNexthop[];
    const byId = new Map(list.map((n) => [n.id, n]));
    const top = byId.get(route.nhid);
    if (!top) return [];
    const members = top.group ? top.group.map((g) => byId.get(g.id)) : [top];
    return members.flatMap((m) => (m?.gateway ? [m.gateway] : [])).sort();
  }
  return route.gateway ? [route.gateway] : [];
}
