/**
 * The gobgpd sidecar of each node. In `agent` mode gobgpd starts empty and the agent drives it over gRPC
 * (StartBgp, AddPeer, AddPath). In `static` mode (no agent yet) a TOML file configures the router peer and the lab
 * announces the VIPs with the `gobgp` CLI, which proves the topology (sessions, ECMP) without the agent.
 */
import type { Topology } from '../topology/model.js';
import { attachmentOf, GOBGPD_API_PORT } from '../topology/model.js';
import { run } from './exec.js';

export function gobgpdArgv(configFile?: string): string[] {
  const argv = ['gobgpd', '--api-hosts', `127.0.0.1:${GOBGPD_API_PORT}`, '--pprof-disable'];
  // gobgpd logs every keepalive at debug; info is enough to debug sessions.
  argv.push('-l', 'info');
  if (configFile) argv.push('-f', configFile, '-t', 'toml');
  return argv;
}

/** Static-mode config: the node's one eBGP peer (the router), hold 3 s / keepalive 1 s, MD5 (RFC 2385). */
export function gobgpdStaticConfig(topology: Topology, node: string): string {
  const self = attachmentOf(topology, 'fabric', node);
  const { bgp } = topology;
  return [
    '[global.config]',
    `  as = ${bgp.nodeAsn}`,
    `  router-id = "${self.ipv4}"`,
    // Listen on the node's own address: the router dials every second (frr.ts), while gobgpd's own first attempt
    // comes only after 5-9 s. Not the wildcard, so one namespace could hold several speakers.
    '  port = 179',
    `  local-address-list = ["${self.ipv4}"]`,
    '',
    '[[neighbors]]',
    '  [neighbors.config]',
    `    neighbor-address = "${bgp.routerAddress}"`,
    `    peer-as = ${bgp.routerAsn}`,
    `    auth-password = "${bgp.password}"`,
    '  [neighbors.timers.config]',
    `    hold-time = ${bgp.holdTimeS}`,
    `    keepalive-interval = ${bgp.keepaliveS}`,
    '    connect-retry = 1',
    '  [neighbors.transport.config]',
    `    local-address = "${self.ipv4}"`,
    '  [[neighbors.afi-safis]]',
    '    [neighbors.afi-safis.config]',
    '      afi-safi-name = "ipv4-unicast"',
    '  [[neighbors.afi-safis]]',
    '    [neighbors.afi-safis.config]',
    '      afi-safi-name = "ipv6-unicast"',
    '',
  ].join('\n');
}

function gobgp(namespace: string, args: string[]) {
  return run(['gobgp', '-p', String(GOBGPD_API_PORT), ...args], { namespace, timeoutMs: 10_000 });
}

/** Announces `prefix` from the node's gobgpd with the node's own address as next hop (static mode). */
export async function announce(namespace: string, prefix: string, nextHop: string): Promise<void> {
  const family = prefix.includes(':') ? ['-a', 'ipv6'] : [];
  await gobgp(namespace, ['global', 'rib', ...family, 'add', prefix, 'nexthop', nextHop]);
}

export async function withdraw(namespace: string, prefix: string): Promise<void> {
  const family = prefix.includes(':') ? ['-a', 'ipv6'] : [];
  await gobgp(namespace, ['global', 'rib', ...family, 'del', prefix]);
}

export interface GobgpNeighbor {
  readonly address: string;
  readonly state: string;
}

/** `gobgp neighbor -j`: session state as GoBGP reports it (e.g. "established", "active"). */
export async function neighbors(namespace: string): Promise<GobgpNeighbor[]> {
  const r = await gobgp(namespace, ['neighbor', '-j']);
  const list = JSON.parse(r.stdout || '[]') as {
    conf?: { neighbor_address?: string };
    state?: { session_state?: number | string; neighbor_address?: string };
  }[];
  return list.map((n) => ({
    address: n.state?.neighbor_address ?? n.conf?.neighbor_address ?? '?',
    state: sessionStateName(n.state?.session_state),
  }));
}

const SESSION_STATES = ['unknown', 'idle', 'connect', 'active', 'opensent', 'openconfirm', 'established'];

function sessionStateName(s: number | string | undefined): string {
  if (typeof s === 'number') return SESSION_STATES[s] ?? String(s);
  return (s ?? 'unknown').toLowerCase();
}

/** Prefixes in the node's global RIB (what it announces). */
export async function announced(namespace: string): Promise<string[]> {
  const out: string[] = [];
  for (const family of [[], ['-a', 'ipv6']]) {
    const r = await gobgp(namespace, ['global', 'rib', ...family, '-j']);
    const doc = JSON.parse(r.stdout || '{}') as Record<string, unknown>;
    out.push(...Object.keys(doc));
  }
  return out.sort();
}
