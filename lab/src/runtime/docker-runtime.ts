/**
 * The Docker runtime: every host a container (docker.ts) whose network namespace gets the netns runtime's name and
 * exactly its wiring (netns-plan.ts); agent mode only. A host made anew is a new container, wired, then released.
 * With BFD the router's and every node's bfdd run in their containers from the same configs as the netns runtime's
 * (frr.ts, bfd.ts); the control container's etcd members are killed and started one by one (docker-etcd.ts).
 * With the bpf data plane each node container mounts its bpf file system, made on this machine first (node-host.ts),
 * and encapsulating backends are set up like the netns runtime's, by `l4fleet backend setup` run from this machine in
 * the container's network namespace (backend-setup.ts), before the container is released: its identity server binds
 * the VIPs that setup puts on lo.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run, runScript } from '@l4fleet/process';
import { stringify } from 'yaml';
import { LabError } from '../errors.js';
import { backendAttachment, hostOf, hostsOfKind } from '../topology/model.js';
import { agentConfig, agentConfigPath } from './agent.js';
import { forgetBackendHost, setupBackend, setupBackends } from './backend-setup.js';
import { prepareNodeBfdd } from './bfd.js';
import {
  agentImageBpfMissing,
  assertLabImages,
  CONTAINER_LOG,
  containerName,
  createContainer,
  dockerAvailable,
  imageOf,
  releaseContainer,
  removeContainer,
} from './docker.js';
import { recordEtcdMember, startEtcdMember, stopEtcdMember } from './docker-etcd.js';
import { watchContainer } from './docker-wait.js';
import { prepareFrr } from './frr.js';
import type { LabContext, LabRuntime } from './lab-runtime.js';
import { hostScript, topologyScript } from './netns-plan.js';
import { observe, prepareDataPlane } from './node-host.js';
import type { LabMode } from './state.js';

/**
 * Creates `host`'s container, records its init's pid as the host's process `container` and watches its exit
 * (docker-wait.ts): the entrypoint execs the host's main daemon, so a daemon that dies ends the lab's waits, named.
 */
async function createContainerFor(lab: LabContext, host: string): Promise<void> {
  const h = hostOf(lab.topology, host);
  const pid = await createContainer(lab.topology, h, (x) => lab.hostDir(x));
  lab.recordPid(host, 'container', pid);
  const name = containerName(h);
  const logs = `docker logs ${name} (kept in ${join(lab.hostDir(host), CONTAINER_LOG)} once it is replaced or removed)`;
  lab.watchDaemon(watchContainer(name, pid), host, 'container', logs);
}

/** Where the node image's entrypoint runs bfdd: FRR's default vty directory inside the container. */
const CONTAINER_FRR_VTY_DIR = '/run/frr';

/**
 * What a node's container mounts: its agent.yaml and, with BFD, its bfdd.conf. The agent.yaml is the lab's, except
 * that the agent reaches its bfdd inside the container (the lab's `bfd.vtyDir` is a host path of the netns runtime).
 */
function writeNodeConfigs(lab: LabContext, node: string): void {
  const dir = lab.hostDir(node);
  const config = agentConfig(lab.topology, node, dir);
  if (config.bfd) config.bfd = { ...(config.bfd as object), vtyDir: CONTAINER_FRR_VTY_DIR };
  writeFileSync(agentConfigPath(dir), `# written by l4fleet lab for ${node} (docker)\n${stringify(config)}`);
  prepareNodeBfdd(lab.topology, node, dir);
}

/** What a node's container needs before it starts: its configs and (bpf) its bpf file system. */
async function prepareNode(lab: LabContext, node: string): Promise<void> {
  writeNodeConfigs(lab, node);
  await prepareDataPlane(lab, node);
}

/**
 * A (new) container for one host, wired and released; refused before anything is made when its image is missing or
 * built from another tree (docker.ts, assertLabImages). A new backend container is a new network namespace: its old
 * setup is forgotten and it is set up again; `peers`: every backend is, because the host is new to the others (second
 * chance peers), or only this one (it was restored).
 */
async function replaceContainer(lab: LabContext, host: string, peers: 'all' | 'self' = 'all'): Promise<void> {
  const { kind } = hostOf(lab.topology, host);
  // Its image may have been rebuilt, or the tree changed, since `lab up`: never old code silently.
  await assertLabImages([imageOf(kind)]);
  if (kind === 'node') await prepareNode(lab, host);
  if (kind === 'backend') await forgetBackendHost(lab, host);
  await createContainerFor(lab, host);
  await runScript(hostScript(lab.topology, host));
  if (kind === 'node') await observe(lab, host);
  if (kind === 'backend') await (peers === 'all' ? setupBackends(lab) : setupBackend(lab, host));
  await releaseContainer(hostOf(lab.topology, host));
}

/**
 * A backend in a new container has a new MAC on its segment, but its neighbours still hold the old one in their ARP
 * / ND entries (REACHABLE, then STALE for ~5 s before a probe): on the fabric the nodes forward its flows at L2 (DSR)
 * to that MAC, on the routed segment the router forwards the encapsulated packets to it (the same reason lab.ts
 * flushes the router's entry of a re-created node). Flushing the entries makes them resolve it on the next packet.
 */
async function restoreBackendContainer(lab: LabContext, host: string): Promise<void> {
  await replaceContainer(lab, host, 'self');
  // On the fabric or (routed) the backends' segment, where the router is its neighbor.
  const self = backendAttachment(lab.topology, host);
  for (const h of lab.topology.hosts) {
    if ((h.kind !== 'node' && h.kind !== 'router') || !h.namespace) continue;
    await run(['ip', 'neigh', 'flush', 'to', self.ipv4], { namespace: h.namespace, allowFailure: true });
    if (self.ipv6) {
      await run(['ip', '-6', 'neigh', 'flush', 'to', self.ipv6], { namespace: h.namespace, allowFailure: true });
    }
  }
}

export const dockerRuntime: LabRuntime = {
  name: 'docker',
  async resolveMode(wanted: LabMode | 'auto'): Promise<LabMode> {
    if (wanted === 'static')
      throw new LabError('RUNTIME_UNSUPPORTED', '--runtime docker runs the agent: no static mode');
    if (!(await dockerAvailable())) {
      throw new LabError(
        'RUNTIME_UNSUPPORTED',
        '--runtime docker: no Docker engine answers (start dockerd, set DOCKER_HOST, build the images with deploy/docker/build-images.sh)',
      );
    }
    // Missing, or built from another tree (after a git pull or an edit): refused before anything is made.
    await assertLabImages();
    return 'agent';
  },
  bpfMissing: agentImageBpfMissing,
  /** Configs first (containers mount them), every container, the shared wiring, backend setup, then release. */
  async build(lab) {
    const { topology } = lab;
    prepareFrr(topology, lab.hostDir('router'));
    for (const n of hostsOfKind(topology, 'node')) await prepareNode(lab, n.name);
    for (const h of topology.hosts) if (h.kind !== 'host') await createContainerFor(lab, h.name);
    await runScript(topologyScript(topology));
    for (const n of hostsOfKind(topology, 'node')) await observe(lab, n.name);
    await setupBackends(lab);
    for (const h of topology.hosts) if (h.kind !== 'host') await releaseContainer(h);
    // Recorded under their names like the netns runtime's, so `healthy` checks them and `kill etcd2` finds one.
    for (const m of topology.control.etcdMembers) await recordEtcdMember(lab, m);
  },
  startHost: (lab, host) => replaceContainer(lab, host),
  async removeHost(lab, host) {
    const name = containerName(hostOf(lab.topology, host));
    // Its output first: after a failed add-node the container's log is the only record of why.
    await removeContainer(lab.id, name, lab.hostDir(host));
    await run(['ip', 'netns', 'delete', name], { allowFailure: true });
  },
  // The container exited with its service: a new one is created and wired like one added later.
  restoreService: restoreBackendContainer,
  // By its name among the control container's processes: a recorded pid may be stale (the container was re-made).
  stopEtcd: (lab, member) => stopEtcdMember(lab, member),
  startEtcd: startEtcdMember,
};
