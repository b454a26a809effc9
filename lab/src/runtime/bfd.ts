/**
 * BFD (RFC 5880/5881, single hop) between the router and every node. The router's bfdd runs beside its bgpd (frr.ts:
 * `neighbor NODES bfd profile nodes`); each node runs FRR's bfdd standalone (gobgpd 3.10 has no BFD), with the router
 * as its one configured peer, in a directory of its own (`<node>/bfd`, owned by frr). Killing a node kills its bfdd,
 * so the router's session times out after intervalMs x multiplier and bgpd drops the node's routes.
 * Design: docs/design/0009-bfd.md.
 */
import { join } from 'node:path';
import { bfdTimers, type FrrPaths, parseBfdPeers, prepareBfddDir, vtysh } from '@l4fleet/daemons';
import { attachmentOf, type Topology } from '../topology/model.js';

/** The node's bfdd directory (config, pid file, vty sockets), its own so that only it is handed to frr. */
function nodeBfdDir(nodeDir: string): string {
  return join(nodeDir, 'bfd');
}

/** The node's bfdd.conf (the Docker runtime mounts it into the node's container). */
export function nodeBfddConfigPath(nodeDir: string): string {
  return join(nodeBfdDir(nodeDir), 'bfdd.conf');
}

/** Writes the node's bfdd.conf (peer: the router, from the node's fabric address) and returns the daemon's paths. */
export function prepareNodeBfdd(topology: Topology, node: string, nodeDir: string): FrrPaths | undefined {
  const { bfd } = topology.bgp;
  if (!bfd) return undefined;
  const self = attachmentOf(topology, 'fabric', node);
  return prepareBfddDir(nodeBfdDir(nodeDir), {
    hostname: node,
    peers: [
      { address: topology.bgp.routerAddress, localAddress: self.ipv4, ...bfdTimers(bfd.intervalMs, bfd.multiplier) },
    ],
  });
}

/**
 * The router's BFD session state per peer address (`up`, `down`, `init`, `shutdown`); undefined when bfdd does not
 * answer (not running, or no BFD in this lab).
 */
export async function routerBfdStates(namespace: string, vtyDir: string): Promise<Map<string, string> | undefined> {
  try {
    const peers = parseBfdPeers(await vtysh(namespace, vtyDir, 'show bfd peers json'));
    return new Map(peers.map((p) => [p.peer, p.status]));
  } catch {
    return undefined;
  }
}
