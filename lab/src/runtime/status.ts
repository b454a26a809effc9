/** `lab status`: what the lab is and how it is doing, as one JSON document. */
import { gobgpRibPrefixes, kernelRoute, parseBgpSummary, vtysh } from '@l4fleet/daemons';
import { run } from '@l4fleet/process';
import { LabError } from '../errors.js';
import type { LabDataPath, LabDataPlane } from '../topology/data-path.js';
import { attachmentOf, backendAttachment, hostsOfKind, type Topology } from '../topology/model.js';
import { cliBin } from './agent.js';
import { routerBfdStates } from './bfd.js';
import type { LabDashboard } from './dashboard.js';
import { nodeGobgp } from './gobgp.js';
import { hostNamespace } from './lab-runtime.js';
import type { LabMode, Runtime } from './state.js';

export interface NodeStatus {
  readonly name: string;
  readonly address: string;
  /** The router's view of the node's BGP session (FRR state name, e.g. `Established`, `Idle`; `Unknown`: no answer). */
  readonly bgp: string;
  readonly killed: boolean;
  /** The data plane the node's agent runs (its agent.yaml `dataplane.driver`). */
  readonly dataplane: LabDataPlane;
  /** From the control plane; null while the lab cannot read it (static mode, etcd not answering). */
  readonly drained: boolean | null;
  /**
   * The router's BFD session to the node (FRR bfdd state: `up`, `down`, `init`, `shutdown`); null when the lab runs
   * no BFD (`lab up --no-bfd`), `Unknown` when the router's bfdd does not answer.
   */
  readonly bfd: string | null;
  /** Prefixes in the node's gobgpd RIB, i.e. what it announces. */
  readonly announced: readonly string[];
}

export interface EtcdMemberStatus {
  /** `etcd<i>`: what `lab kill` / `lab restart` take. */
  readonly name: string;
  readonly endpoint: string;
  /** By `lab kill <member>` until `lab restart <member>`. */
  readonly killed: boolean;
}

export interface LabStatus {
  readonly id: string;
  readonly runtime: Runtime;
  readonly mode: LabMode;
  /** The nodes' data plane, where the backends sit (`l2`: the nodes' segment; `routed`: behind the router), forwarding. */
  readonly dataPath: LabDataPath;
  readonly etcd: { readonly endpoints: readonly string[]; readonly members: readonly EtcdMemberStatus[] };
  readonly nats: { readonly url: string };
  readonly vips: readonly { name: string; address: string; port: number; protocol: string }[];
  readonly nodes: readonly NodeStatus[];
  /** `failed`: by `lab fail-backend` until `lab restore-backend`. */
  readonly backends: readonly { name: string; address: string; failed: boolean }[];
  readonly clients: readonly { name: string; address: string }[];
  /** Kernel next hops of the router's route to each VIP prefix: one per announcing node (ECMP). */
  readonly router: { readonly asn: number; readonly address: string; readonly nextHops: Record<string, string[]> };
  /** The dashboard `lab up` started (its URL opens from the host's browser); null when the lab runs none. */
  readonly dashboard: LabDashboard | null;
}

/** The router's kernel next hops for `prefix` (FRR's nexthop groups resolved): one per announcing node. */
export async function routerNextHops(namespace: string, prefix: string): Promise<string[]> {
  return (await kernelRoute(namespace, prefix))?.nexthops ?? [];
}

const CLI_TIMEOUT_MS = 10_000;

/**
 * Drain flags from the control plane (`l4fleet status`); undefined while etcd does not answer (the CLI fails or
 * times out), which callers treat as "not known". Output the CLI should not produce is an error, not "no flags".
 */
export async function readDrainFlags(topology: Topology): Promise<Map<string, boolean> | undefined> {
  const etcd = topology.control.etcdEndpoints.join(',');
  const argv = [process.execPath, cliBin(), '--etcd', etcd, 'status', '-o', 'json'];
  const r = await run(argv, { allowFailure: true, timeoutMs: CLI_TIMEOUT_MS }).catch(() => undefined);
  if (r?.code !== 0) return undefined;
  try {
    const doc = JSON.parse(r.stdout) as { nodes?: { name: string; drained?: boolean }[] };
    return new Map((doc.nodes ?? []).map((n) => [n.name, Boolean(n.drained)]));
  } catch (err) {
    throw new LabError('COMMAND_FAILED', `"l4fleet status -o json" printed no JSON: ${r.stdout.slice(0, 200)}`, {
      cause: err,
    });
  }
}

export interface StatusInput {
  readonly id: string;
  readonly runtime: Runtime;
  readonly mode: LabMode;
  readonly topology: Topology;
  /** Killed nodes and failed backends. */
  readonly killed: readonly string[];
  readonly vtyDir: string;
  readonly dashboard: LabDashboard | null;
}

export async function collectStatus(lab: StatusInput): Promise<LabStatus> {
  const { topology } = lab;
  const router = hostNamespace(topology, 'router');
  const summary = await vtysh(router, lab.vtyDir, 'show bgp ipv4 unicast summary json').then(
    parseBgpSummary,
    () => undefined,
  );
  const bfd = topology.bgp.bfd ? await routerBfdStates(router, lab.vtyDir) : undefined;
  const drained = lab.mode === 'agent' ? await readDrainFlags(topology) : undefined;
  const nodes: NodeStatus[] = [];
  for (const n of hostsOfKind(topology, 'node')) {
    const fabric = attachmentOf(topology, 'fabric', n.name);
    const killed = lab.killed.includes(n.name);
    const peer = summary?.find((p) => p.address === fabric.ipv4);
    nodes.push({
      name: n.name,
      address: fabric.ipv4,
      bgp: summary ? (peer?.state ?? 'Idle') : 'Unknown',
      killed,
      dataplane: topology.dataPath.dataplane,
      bfd: topology.bgp.bfd ? (bfd ? (bfd.get(fabric.ipv4) ?? 'down') : 'Unknown') : null,
      drained: drained?.get(n.name) ?? null,
      announced: killed ? [] : await gobgpRibPrefixes(nodeGobgp(hostNamespace(topology, n.name))).catch(() => []),
    });
  }
  const nextHops: Record<string, string[]> = {};
  for (const vip of topology.vips) {
    const prefix = `${vip.address}/${vip.address.includes(':') ? 128 : 32}`;
    nextHops[prefix] = await routerNextHops(router, prefix);
  }
  return {
    id: lab.id,
    runtime: lab.runtime,
    mode: lab.mode,
    dataPath: { ...topology.dataPath },
    etcd: {
      endpoints: [...topology.control.etcdEndpoints],
      members: topology.control.etcdMembers.map((m) => ({
        name: m.name,
        endpoint: m.clientUrl,
        killed: lab.killed.includes(m.name),
      })),
    },
    nats: { url: topology.control.natsUrl },
    vips: topology.vips.map((v) => ({ name: v.name, address: v.address, port: v.port, protocol: v.protocol })),
    nodes,
    backends: hostsOfKind(topology, 'backend').map((b) => ({
      name: b.name,
      address: backendAttachment(topology, b.name).ipv4,
      failed: lab.killed.includes(b.name),
    })),
    clients: hostsOfKind(topology, 'client').map((c) => ({
      name: c.name,
      address: attachmentOf(topology, `access-${c.name}`, c.name).ipv4,
    })),
    router: { asn: topology.bgp.routerAsn, address: topology.bgp.routerAddress, nextHops },
    dashboard: lab.dashboard,
  };
}
