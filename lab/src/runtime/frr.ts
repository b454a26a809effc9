/**
 * The lab router: FRR zebra + bgpd (+ bfdd with BFD) in the router namespace (launcher: @l4fleet/daemons). One explicit neighbor per
 * node in the peer-group NODES (MD5, timers, both unicast families), eBGP multipath so the VIP /32 gets one kernel
 * next hop per announcing node (per-flow L4 ECMP, RFC 7938 §5).
 *
 * Why explicit neighbors and not a `bgp listen range`: a dynamic neighbor is passive, so every session would wait
 * for the node's gobgpd to dial, and gobgpd 3.10 waits a random 5-9 s before each outgoing attempt whatever its
 * connect-retry (pkg/server/fsm.go connectLoop: `Intn(5)+5` s, minConnectRetryInterval 5). With a configured
 * neighbor FRR dials the node itself every second (`timers connect 1`) and the node's gobgpd, which listens on its
 * own address, accepts at once: sessions come up in about 1 s. add-node therefore adds the neighbor (`addNeighbor`).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  addFrrNeighbor,
  bfdTimers,
  type FrrOptions,
  type FrrPaths,
  frrBgpdConfig,
  prepareFrrDir,
  vtysh,
} from '@l4fleet/daemons';
import { attachmentOf, hostsOfKind, MAX_NODES, type Topology } from '../topology/model.js';

/** One path per node: `lab up` waits for a next hop from every node, so the node cap and this are one number. */
export const MAX_ECMP_PATHS = MAX_NODES;
const NODES_GROUP = 'NODES';

/** The nodes the router peers with: every node of the topology, killed or not (a killed node comes back). */
export function nodeAddresses(topology: Topology): string[] {
  return hostsOfKind(topology, 'node').map((n) => attachmentOf(topology, 'fabric', n.name).ipv4);
}

/** The bfdd profile of the router's sessions to the nodes (`lab up --bfd-interval-ms`, `--bfd-multiplier`). */
export const BFD_PROFILE = 'nodes';

export function routerOptions(topology: Topology): FrrOptions {
  const { bgp } = topology;
  // BFD (RFC 5880/5881): bgpd registers each node's session with bfdd and drops the node, with its routes, as soon as
  // the session goes down (intervalMs x multiplier) instead of at the end of the hold time.
  const bfd = bgp.bfd ? bfdTimers(bgp.bfd.intervalMs, bgp.bfd.multiplier) : undefined;
  return {
    asn: bgp.routerAsn,
    routerId: bgp.routerAddress,
    hostname: 'router',
    extraBgpConfig: ['no bgp network import-check', 'bgp bestpath as-path multipath-relax'],
    peerGroup: {
      name: NODES_GROUP,
      asn: bgp.nodeAsn,
      password: bgp.password,
      keepaliveS: bgp.keepaliveS,
      holdTimeS: bgp.holdTimeS,
      members: nodeAddresses(topology),
      ...(bfd ? { bfdProfile: BFD_PROFILE } : {}),
    },
    ...(bfd ? { bfdProfiles: [{ name: BFD_PROFILE, ...bfd }] } : {}),
    maximumPaths: MAX_ECMP_PATHS,
  };
}

export function bgpdConfig(topology: Topology): string {
  return frrBgpdConfig(routerOptions(topology));
}

/** Writes the config files into `dir` (owned by frr, which the daemons drop privileges to). */
export function prepareFrr(topology: Topology, dir: string): FrrPaths {
  return prepareFrrDir(dir, routerOptions(topology));
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
  await addFrrNeighbor(namespace, paths.vtyDir, topology.bgp.routerAsn, NODES_GROUP, address);
  writeFileSync(join(paths.dir, 'bgpd.conf'), bgpdConfig(topology));
}

/** Undoes addNeighbor (an add-node that failed): `address` leaves the running router; `topology` is without it. */
export async function removeNeighbor(
  namespace: string,
  paths: FrrPaths,
  topology: Topology,
  address: string,
): Promise<void> {
  await vtysh(
    namespace,
    paths.vtyDir,
    'configure terminal',
    `router bgp ${topology.bgp.routerAsn}`,
    `no neighbor ${address}`,
  );
  writeFileSync(join(paths.dir, 'bgpd.conf'), bgpdConfig(topology));
}
