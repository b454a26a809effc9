/** Waiting for the lab to be ready, from the outside: etcd answers, the router's ECMP route, the VIPs answer. */
import { run, waitFor } from '@l4fleet/process';
import { vipSpec } from '../topology/containerlab.js';
import { attachmentOf, type EtcdMember, hostsOfKind, type Topology, VIP_TCP } from '../topology/model.js';
import { hostNamespace } from './lab-runtime.js';
import { routerNextHops } from './status.js';

const ETCD_HEALTH_TIMEOUT_MS = 5_000;
const PROBE_TIMEOUT_MS = 5_000;

function routerNs(topology: Topology): string {
  return hostNamespace(topology, 'router');
}

/** Waits until every member of `members` (default: all) answers a health check (it needs a quorum to). */
export function waitEtcd(
  topology: Topology,
  timeoutMs: number,
  members: readonly EtcdMember[] = topology.control.etcdMembers,
): Promise<boolean> {
  const endpoints = members.map((m) => m.clientUrl).join(',');
  return waitFor(
    `etcd ${members.map((m) => m.name).join(',')}`,
    async () => {
      const health = ['etcdctl', '--endpoints', endpoints, 'endpoint', 'health'];
      const r = await run(health, { allowFailure: true, timeoutMs: ETCD_HEALTH_TIMEOUT_MS });
      return r.code === 0 ? true : undefined;
    },
    timeoutMs,
    200,
  );
}

/** Waits until the router's route to the first VIP has exactly `count` next hops; returns them. */
export async function waitNextHops(topology: Topology, count: number, timeoutMs: number): Promise<string[]> {
  const vip = topology.vips[0];
  if (!vip) return [];
  return waitFor(
    `router ECMP route ${vip.address}/32 with ${count} next hops`,
    async () => {
      const hops = await routerNextHops(routerNs(topology), `${vip.address}/32`);
      return hops.length === count ? hops : undefined;
    },
    timeoutMs,
    100,
  );
}

/** Waits until the router routes the TCP VIP through `node` (its BGP session is up and it announces). */
export async function waitInEcmp(topology: Topology, node: string, timeoutMs: number): Promise<void> {
  const address = attachmentOf(topology, 'fabric', node).ipv4;
  await waitFor(
    `router ECMP route ${VIP_TCP.address}/32 via ${node} (${address})`,
    async () => (await routerNextHops(routerNs(topology), `${VIP_TCP.address}/32`)).includes(address) || undefined,
    timeoutMs,
    100,
  );
}

/** One request from `client` to a VIP (ncat for TCP, socat for UDP); returns the first line of the answer. */
export async function probe(
  topology: Topology,
  client: string,
  vip: { readonly address: string; readonly port: number; readonly protocol: string },
): Promise<string> {
  // UDP with socat, not `ncat -u`: ncat exits as soon as its stdin ends, and on an idle machine that is before
  // the answer arrives (the client then counts UdpNoPorts); socat waits `-t` seconds for it after the EOF.
  const host = vip.address.includes(':') ? `[${vip.address}]` : vip.address;
  const argv =
    vip.protocol === 'udp'
      ? ['socat', '-T', '2', '-t', '0.5', '-', `UDP:${host}:${vip.port}`]
      : ['ncat', '-w', '2', vip.address, String(vip.port)];
  const namespace = hostNamespace(topology, client);
  const r = await run(argv, { namespace, input: 'probe\n', allowFailure: true, timeoutMs: PROBE_TIMEOUT_MS });
  return r.stdout.split('\n')[0] ?? '';
}

export async function waitVipsAnswer(topology: Topology, timeoutMs: number): Promise<void> {
  const client = hostsOfKind(topology, 'client')[0]?.name ?? 'client';
  for (const vip of topology.vips) {
    await waitFor(
      `VIP ${vipSpec(vip)} answering the client`,
      async () => ((await probe(topology, client, vip)).startsWith('backend=') ? true : undefined),
      timeoutMs,
      300,
    );
  }
}
