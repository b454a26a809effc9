/**
 * The node agent as the lab runs it. The agent (`l4fleet agent --config agent.yaml`) is written in parallel; this is
 * the one place that knows how to configure and start it, so wiring it in is a change here only.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { frrPaths } from '@l4fleet/daemons';
import { run } from '@l4fleet/process';
import { stringify } from 'yaml';
import type { Topology } from '../topology/model.js';
import { AGENT_METRICS_PORT, attachmentOf, GOBGPD_API_PORT } from '../topology/model.js';
import { nodeBfddConfigPath } from './bfd.js';
import { bpffsDir } from './bpffs.js';
import { repoRoot } from './scripts.js';

/**
 * The agent.yaml the lab writes for `node`: identity, interface, BGP peer, sidecar, control plane, metrics, and
 * (netns runtime) the agent's last-good-state directory inside the lab's state dir, so `lab down` removes it too.
 */
export function agentConfig(topology: Topology, node: string, stateDir?: string): Record<string, unknown> {
  const fabric = attachmentOf(topology, 'fabric', node);
  const control = attachmentOf(topology, 'control', node);
  const { bgp } = topology;
  return {
    fleet: 'default',
    node: {
      name: node,
      interface: fabric.iface,
      address: fabric.ipv4,
      ...(fabric.ipv6 ? { address6: fabric.ipv6 } : {}),
    },
    bgp: {
      asn: bgp.nodeAsn,
      routerId: fabric.ipv4,
      // The router dials the node (frr.ts: explicit neighbor, `timers connect 1`), so the session is up in ~1 s
      // instead of waiting 5-9 s for gobgpd's first outgoing attempt. Bound to the node's address, not the wildcard.
      listenPort: 179,
      listenAddresses: [fabric.ipv4],
      gobgpdAddress: `127.0.0.1:${GOBGPD_API_PORT}`,
      peers: [
        {
          address: bgp.routerAddress,
          asn: bgp.routerAsn,
          password: bgp.password,
          holdTimeS: bgp.holdTimeS,
          keepaliveS: bgp.keepaliveS,
          localAddress: fabric.ipv4,
        },
      ],
    },
    etcd: { endpoints: [...topology.control.etcdEndpoints] },
    nats: { servers: [topology.control.natsUrl] },
    // On the node's control address, so the lab (and Prometheus on the host) can scrape every node.
    metrics: { listen: `${control.ipv4}:${AGENT_METRICS_PORT}` },
    dataplane: dataplaneSection(topology, node, stateDir),
    ...(stateDir ? { state: { dir: stateDir } } : {}),
    ...bfdSection(topology, stateDir),
  };
}

/**
 * agent.yaml `bfd` (netns runtime, with BFD): the agent keeps and reports the session in the node's bfdd, which the
 * lab starts (bfd.ts) and reaches on its vty socket directory; the timers are the lab's, so the agent configuring the
 * peer changes nothing in the session the file set up.
 */
function bfdSection(topology: Topology, stateDir: string | undefined): Record<string, unknown> {
  const { bfd } = topology.bgp;
  if (!bfd || !stateDir) return {};
  return {
    bfd: {
      enabled: true,
      vtyDir: frrPaths(dirname(nodeBfddConfigPath(stateDir))).vtyDir,
      receiveIntervalMs: bfd.intervalMs,
      transmitIntervalMs: bfd.intervalMs,
      detectMultiplier: bfd.multiplier,
    },
  };
}

/**
 * agent.yaml `dataplane` for the lab's data plane. bpf: the pins go to the node's own bpf file system in its state
 * dir (bpffs.ts mounts it before the agent starts): `ip netns exec` gives the agent a fresh /sys, where pins would
 * vanish with the agent, and one file system per node keeps the nodes' maps apart. Its encapsulation sources default
 * to node.address / address6 (what backends allow, backend-setup.ts).
 */
function dataplaneSection(topology: Topology, node: string, stateDir: string | undefined): Record<string, unknown> {
  const { dataplane } = topology.dataPath;
  if (dataplane !== 'bpf') return { driver: dataplane };
  return { driver: 'bpf', ...(stateDir ? { bpffsPath: bpffsDir(stateDir), pinName: node } : {}) };
}

export function agentYaml(topology: Topology, node: string, stateDir?: string): string {
  return `# written by l4fleet lab for ${node}\n${stringify(agentConfig(topology, node, stateDir))}`;
}

export function cliBin(): string {
  return join(repoRoot(), 'packages', 'cli', 'dist', 'bin.js');
}

/** argv that starts the agent; the only line to change if the agent's command line differs. */
export function agentArgv(configFile: string): string[] {
  return [process.execPath, cliBin(), 'agent', '--config', configFile];
}

export function agentConfigPath(nodeDir: string): string {
  return join(nodeDir, 'agent.yaml');
}

/** The agent exists once the built CLI knows the `agent` command. */
export async function agentAvailable(): Promise<boolean> {
  if (!existsSync(cliBin())) return false;
  const r = await run([process.execPath, cliBin(), 'agent', '--help'], { allowFailure: true, timeoutMs: 15_000 });
  // commander answers `--help` of an unknown command with the program's help and exit 0: check it is the agent's.
  return r.code === 0 && /Usage: l4fleet agent/.test(r.stdout);
}
