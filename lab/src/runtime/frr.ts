/**
 * The lab router: FRR zebra + bgpd in the router namespace, without systemd or watchfrr (platform-facts).
 * One explicit neighbor per node in the peer-group NODES (MD5, timers, both unicast families), eBGP multipath so the
 * VIP /32 gets one kernel next hop per announcing node (per-flow L4 ECMP, RFC 7938 §5).
 *
 * Why explicit neighbors and not a `bgp listen range`: a dynamic neighbor is passive, so every session would wait
 * for the node's gobgpd to dial, and gobgpd 3.10 waits a random 5-9 s before each outgoing attempt whatever its
 * connect-retry (pkg/server/fsm.go connectLoop: `Intn(5)+5` s, minConnectRetryInterval 5). With a configured
 * neighbor FRR dials the node itself every second (`timers connect 1`) and the node's gobgpd, which listens on its
 * own address, accepts at once: sessions come up in about 1 s. add-node therefore adds the neighbor (`addNeighbor`).
 */

import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { attachmentOf, hostsOfKind, type Topology } from '../topology/model.js';
import { run } from './exec.js';

export const FRR_DIR = '/usr/lib/frr';
export const MAX_ECMP_PATHS = 64;

/** The nodes the router peers with: every node of the topology, killed or not (a killed node comes back). */
export function nodeAddresses(topology: Topology): string[] {
  return hostsOfKind(topology, 'node').map((n) => attachmentOf(topology, 'fabric', n.name).ipv4);
}

export function bgpdConfig(topology: Topology): string {
  const { bgp } = topology;
  return [
    'frr defaults traditional',
    'hostname router',
    'log stdout informational',
    '!',
    `router bgp ${bgp.routerAsn}`,
    ` bgp router-id ${bgp.routerAddress}`,
    // FRR 8.4 denies every route of an eBGP peer without a policy unless told otherwise (RFC 8212 default).
    ' no bgp ebgp-requires-policy',
    ' no bgp network import-check',
    ' bgp bestpath as-path multipath-relax',
    ' neighbor NODES peer-group',
    ` neighbor NODES remote-as ${bgp.nodeAsn}`,
    ` neighbor NODES password ${bgp.password}`,
    ` neighbor NODES timers ${bgp.keepaliveS} ${bgp.holdTimeS}`,
    ' neighbor NODES timers connect 1',
    ...nodeAddresses(topology).map((a) => ` neighbor ${a} peer-group NODES`),
    ' !',
    ' address-family ipv4 unicast',
    `  maximum-paths ${MAX_ECMP_PATHS}`,
    ' exit-address-family',
    ' !',
    ' address-family ipv6 unicast',
    '  neighbor NODES activate',
    `  maximum-paths ${MAX_ECMP_PATHS}`,
    ' exit-address-family',
    '!',
    '',
  ].join('\n');
}

export interface FrrPaths {
  readonly dir: string;
  readonly vtyDir: string;
  readonly zservSocket: string;
}

/** Writes the config files into `dir` (owned by frr, which the daemons drop privileges to). */
export function prepareFrr(topology: Topology, dir: string): FrrPaths {
  const vtyDir = join(dir, 'vty');
  execFileSync('mkdir', ['-p', vtyDir]);
  writeFileSync(join(dir, 'zebra.conf'), 'hostname router\nlog stdout informational\n');
  writeFileSync(join(dir, 'bgpd.conf'), bgpdConfig(topology));
  execFileSync('chown', ['-R', 'frr:frr', dir]);
  chmodSync(dir, 0o755);
  chownSync(vtyDir, uidOf('frr'), gidOf('frr'));
  return { dir, vtyDir, zservSocket: join(dir, 'zserv.api') };
}

function uidOf(user: string): number {
  return Number(execFileSync('id', ['-u', user]).toString().trim());
}

function gidOf(user: string): number {
  return Number(execFileSync('id', ['-g', user]).toString().trim());
}

/** argv of a daemon in the foreground (no -d): the pid we spawn is the daemon's, for `lab kill` and `lab down`. */
export function frrDaemonArgv(daemon: 'zebra' | 'bgpd', paths: FrrPaths): string[] {
  return [
    join(FRR_DIR, daemon),
    '-u',
    'frr',
    '-g',
    'frr',
    '-f',
    join(paths.dir, `${daemon}.conf`),
    '-i',
    join(paths.dir, `${daemon}.pid`),
    '-z',
    paths.zservSocket,
    '--vty_socket',
    paths.vtyDir,
    '-A',
    '127.0.0.1',
  ];
}

export async function vtysh(namespace: string, paths: FrrPaths, command: string): Promise<string> {
  const r = await run(['vtysh', '--vty_socket', paths.vtyDir, '-c', command], { namespace, timeoutMs: 10_000 });
  return r.stdout;
}

/**
 * Adds `address` to the running router as a member of NODES (idempotent) and rewrites bgpd.conf, so a router
 * started again from the file knows the node too. FRR dials the new neighbor within a second.
 */
export async function addNeighbor(
  namespace: string,
  paths: FrrPaths,
  topology: Topology,
  address: string,
): Promise<void> {
  await run(
    [
      'vtysh',
      '--vty_socket',
      paths.vtyDir,
      '-c',
      'configure terminal',
      '-c',
      `router bgp ${topology.bgp.routerAsn}`,
      '-c',
      `neighbor ${address} peer-group NODES`,
    ],
    { namespace, timeoutMs: 10_000 },
  );
  writeFileSync(join(paths.dir, 'bgpd.conf'), bgpdConfig(topology));
}

export interface BgpNeighborState {
  readonly address: string;
  readonly state: string;
  readonly prefixesReceived: number;
}

/** Parses `show bgp ipv4 unicast summary json` (FRR 8.4 shape: { ipv4Unicast: { peers: {addr: {...}} } } or flat). */
export function parseBgpSummary(json: string): BgpNeighborState[] {
  const doc = JSON.parse(json || '{}') as Record<string, unknown>;
  const af = (doc.ipv4Unicast ?? doc) as { peers?: Record<string, { state?: string; pfxRcd?: number }> };
  return Object.entries(af.peers ?? {}).map(([address, p]) => ({
    address,
    state: p.state ?? 'Unknown',
    prefixesReceived: p.pfxRcd ?? 0,
  }));
}
