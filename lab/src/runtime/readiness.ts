/**
 * Waiting for the lab to be ready, from the outside: etcd and NATS answer, the router's ECMP route, the VIPs answer.
 * Each wait takes a `giveUp` (daemon-exits.ts): a daemon that died ends it at once, naming the daemon.
 */
import { Socket } from 'node:net';
import { run, waitFor } from '@l4fleet/process';
import { vipSpec } from '../topology/containerlab.js';
import { attachmentOf, type EtcdMember, hostsOfKind, type Topology, VIP_TCP } from '../topology/model.js';
import { hostNamespace } from './lab-runtime.js';
import { routerNextHops } from './status.js';

const ETCD_HEALTH_TIMEOUT_MS = 5_000;
const PROBE_TIMEOUT_MS = 5_000;
const CONNECT_TIMEOUT_MS = 1_000;
/** How much of etcdctl's last complaint a timeout carries. */
const ETCDCTL_STDERR_CHARS = 600;

/** Why a wait should end now (a daemon it needs exited); undefined while there is no such reason. */
export type GiveUp = () => string | undefined;

function routerNs(topology: Topology): string {
  return hostNamespace(topology, 'router');
}

/**
 * Waits until every member of `members` (default: all) answers a health check (it needs a quorum to). A timeout
 * carries what etcdctl said last (the unhealthy endpoints and why), not only the step.
 */
export function waitEtcd(
  topology: Topology,
  timeoutMs: number,
  members: readonly EtcdMember[] = topology.control.etcdMembers,
  giveUp?: GiveUp,
): Promise<boolean> {
  const endpoints = members.map((m) => m.clientUrl).join(',');
  return waitFor(
    `etcd ${members.map((m) => m.name).join(',')}`,
    async () => {
      const health = ['etcdctl', '--endpoints', endpoints, 'endpoint', 'health'];
      const r = await run(health, { allowFailure: true, timeoutMs: ETCD_HEALTH_TIMEOUT_MS });
      if (r.code === 0) return true;
      // Its log lines (JSON) say less than the per-endpoint lines; the last line is only "Error: unhealthy cluster".
      const said = r.stderr
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l !== '' && !l.startsWith('{'))
        .join('; ');
      throw new Error(
        `etcdctl endpoint health exited ${r.code}: ${said.slice(-ETCDCTL_STDERR_CHARS) || '(no output)'}`,
      );
    },
    timeoutMs,
    200,
    giveUp,
  );
}

/** Waits until `natsUrl` (nats://host:port) takes a TCP connection: nats-server listens. */
export async function waitNats(natsUrl: string, timeoutMs: number, giveUp?: GiveUp): Promise<void> {
  const { hostname, port } = new URL(natsUrl);
  await waitFor(`nats-server at ${natsUrl}`, () => connects(hostname, Number(port)), timeoutMs, 200, giveUp);
}

/** true once `host:port` takes a TCP connection; throws (the wait's last error) when it does not. */
function connects(host: string, port: number): Promise<true> {
  return new Promise((resolve, reject) => {
    const socket = new Socket();
    socket.setTimeout(CONNECT_TIMEOUT_MS);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', (err) => {
      socket.destroy();
      reject(err);
    });
    socket.once('timeout', () => {
      socket.destroy();
      reject(new Error(`connect to ${host}:${port}: no answer within ${CONNECT_TIMEOUT_MS} ms`));
    });
    socket.connect(port, host);
  });
}

/** Waits until the router's route to the first VIP has exactly `count` next hops; returns them. */
export async function waitNextHops(
  topology: Topology,
  count: number,
  timeoutMs: number,
  giveUp?: GiveUp,
): Promise<string[]> {
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
    giveUp,
  );
}

/** Waits until the router routes the TCP VIP through `node` (its BGP session is up and it announces). */
export async function waitInEcmp(topology: Topology, node: string, timeoutMs: number, giveUp?: GiveUp): Promise<void> {
  const address = attachmentOf(topology, 'fabric', node).ipv4;
  await waitFor(
    `router ECMP route ${VIP_TCP.address}/32 via ${node} (${address})`,
    async () => (await routerNextHops(routerNs(topology), `${VIP_TCP.address}/32`)).includes(address) || undefined,
    timeoutMs,
    100,
    giveUp,
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

export async function waitVipsAnswer(topology: Topology, timeoutMs: number, giveUp?: GiveUp): Promise<void> {
  const client = hostsOfKind(topology, 'client')[0]?.name ?? 'client';
  for (const vip of topology.vips) {
    await waitFor(
      `VIP ${vipSpec(vip)} answering the client`,
      async () => ((await probe(topology, client, vip)).startsWith('backend=') ? true : undefined),
      timeoutMs,
      300,
      giveUp,
    );
  }
}
