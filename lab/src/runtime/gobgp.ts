/**
 * The gobgpd sidecar of each node (launcher: @l4fleet/daemons). In `agent` mode gobgpd starts empty and the agent
 * drives it over gRPC (StartBgp, AddPeer, AddPath). In `static` mode (no agent yet) a TOML file configures the router
 * peer and the lab announces the VIPs with the `gobgp` CLI, which proves the topology (sessions, ECMP) without the
 * agent.
 */
import {
  gobgpdArgv as daemonArgv,
  type GobgpApi,
  type GobgpNeighbor,
  gobgpAnnounce,
  gobgpdConfigToml,
  gobgpNeighbors,
  gobgpRibPrefixes,
  gobgpWithdraw,
} from '@l4fleet/daemons';
import type { Topology } from '../topology/model.js';
import { attachmentOf, GOBGPD_API_PORT } from '../topology/model.js';

export function gobgpdArgv(configFile?: string): string[] {
  return daemonArgv({ apiHosts: `127.0.0.1:${GOBGPD_API_PORT}`, configFile });
}

/** The API of the gobgpd in `namespace` (a node's). */
export function nodeGobgp(namespace: string): GobgpApi {
  return { apiPort: GOBGPD_API_PORT, namespace };
}

/** Static-mode config: the node's one eBGP peer (the router), hold 3 s / keepalive 1 s, MD5 (RFC 2385). */
export function gobgpdStaticConfig(topology: Topology, node: string): string {
  const self = attachmentOf(topology, 'fabric', node);
  const { bgp } = topology;
  return gobgpdConfigToml({
    asn: bgp.nodeAsn,
    routerId: self.ipv4,
    // Listen on the node's own address: the router dials every second (frr.ts), while gobgpd's own first attempt
    // comes only after 5-9 s. Not the wildcard, so one namespace could hold several speakers.
    port: 179,
    listenAddresses: [self.ipv4],
    neighbors: [
      {
        address: bgp.routerAddress,
        asn: bgp.routerAsn,
        password: bgp.password,
        holdTimeS: bgp.holdTimeS,
        keepaliveS: bgp.keepaliveS,
        connectRetryS: 1,
        localAddress: self.ipv4,
      },
    ],
  });
}

/** Announces `prefix` from the node's gobgpd with the node's own address as next hop (static mode). */
export function announce(namespace: string, prefix: string, nextHop: string): Promise<void> {
  return gobgpAnnounce(nodeGobgp(namespace), prefix, nextHop);
}

export function withdraw(namespace: string, prefix: string): Promise<void> {
  return gobgpWithdraw(nodeGobgp(namespace), prefix);
}

/** Session state as the node's GoBGP reports it (e.g. "established", "active"). */
export function neighbors(namespace: string): Promise<GobgpNeighbor[]> {
  return gobgpNeighbors(nodeGobgp(namespace));
}

/** Prefixes in the node's global RIB (what it announces). */
export function announced(namespace: string): Promise<string[]> {
  return gobgpRibPrefixes(nodeGobgp(namespace));
}
