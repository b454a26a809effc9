/** The lab's balancer nodes: add one, kill one (hard failure), restart one. */
import { killAll, namespacePids, run } from '@l4fleet/process';
import { attachmentOf, nextNodeIndex, nodeName, segmentOf } from '../topology/model.js';
import { setupBackends } from './backend-setup.js';
import { unmountBpffsUnder } from './bpffs.js';
import { addNeighbor, removeNeighbor } from './frr.js';
import { type LabCore, markAlive, markKilled, requireKind, routerPaths } from './lab-core.js';
import { hubPortName } from './netns-plan.js';
import { waitInEcmp } from './readiness.js';
import { appendEvent } from './state.js';
import { readDrainFlags } from './status.js';

/**
 * Adds the next node and makes it the router's neighbor (the router dials it, frr.ts); returns its name. `signal`
 * (l4fleet-lab's SIGINT / SIGTERM, interrupt.ts) is checked between the steps and ends the wait for the router: an
 * add stopped there undoes itself as a failed one does, where the process ending by the signal left the node in the
 * state with no namespace and no pids (the next `up` then took the whole lab for stale and removed it).
 */
export async function addNode(core: LabCore, readyTimeoutMs: number, signal?: AbortSignal): Promise<string> {
  signal?.throwIfAborted();
  const index = nextNodeIndex(core.topology);
  const name = nodeName(index);
  // In the state before anything is made, so `down` after a crash from here on finds the node's processes.
  core.setHosts({ nodeIndexes: [...core.state.nodeIndexes, index], backends: core.state.backends });
  let neighbor = false;
  try {
    // Encapsulating backends accept the new node's packets before the router can send it a flow.
    await setupBackends(core);
    signal?.throwIfAborted();
    await core.runtime.startHost(core, name);
    signal?.throwIfAborted();
    await forgetRouterNeighborCache(core, name);
    const address = attachmentOf(core.topology, 'fabric', name).ipv4;
    neighbor = true;
    await addNeighbor(core.ns('router'), routerPaths(core.id), core.topology, address);
    signal?.throwIfAborted();
    // The node's daemons and the router's: one that died is why the route never comes.
    const daemonExited = core.giveUp((host) => host === name || host === 'router');
    await waitInEcmp(core.topology, name, readyTimeoutMs, () =>
      signal?.aborted ? reasonText(signal.reason) : daemonExited(),
    );
  } catch (err) {
    await undoAddNode(core, name, neighbor).catch((undoErr: unknown) =>
      core.log?.warn({ event: 'addNodeUndoFailed', node: name, err: undoErr }, 'lab down removes what is left'),
    );
    // Stopped by the signal: its reason (the wait's give-up error names it only in its text).
    if (signal?.aborted) throw signal.reason;
    throw err;
  }
  appendEvent(core.id, { event: 'nodeAdded', host: name });
  return name;
}

function reasonText(reason: unknown): string {
  return reason instanceof Error ? reason.message : String(reason);
}

/**
 * An add-node that failed leaves no node behind: the host and its processes go, the router forgets it, the state
 * holds the lab as it was (the next add-node tries the same name again), encapsulating backends forget its address.
 */
async function undoAddNode(core: LabCore, name: string, neighbor: boolean): Promise<void> {
  const address = attachmentOf(core.topology, 'fabric', name).ipv4;
  await core.runtime.removeHost(core, name);
  await unmountBpffsUnder(core.hostDir(name));
  const { [name]: _pids, ...pids } = core.state.pids;
  const { [name]: _starts, ...starts } = core.state.starts ?? {};
  core.state.pids = pids;
  if (core.state.starts) core.state.starts = starts;
  core.state.killed = core.state.killed.filter((h) => h !== name);
  const nodeIndexes = core.state.nodeIndexes.filter((i) => nodeName(i) !== name);
  core.setHosts({ nodeIndexes, backends: core.state.backends });
  if (neighbor) await removeNeighbor(core.ns('router'), routerPaths(core.id), core.topology, address);
  await setupBackends(core);
}

/**
 * The re-created link has a new MAC address, but the router's ARP / ND entry for the node still holds the old one
 * (REACHABLE, then STALE for ~5 s before it probes again). The router dials the node (frr.ts), so its SYNs would go
 * to a MAC that no longer exists until then: measured 6-9 s instead of ~1 s for a restart. Flushing the entries
 * makes the router resolve the node afresh on its next packet.
 */
async function forgetRouterNeighborCache(core: LabCore, node: string): Promise<void> {
  const fabric = attachmentOf(core.topology, 'fabric', node);
  const namespace = core.ns('router');
  await run(['ip', 'neigh', 'flush', 'to', fabric.ipv4], { namespace, allowFailure: true });
  if (fabric.ipv6) await run(['ip', '-6', 'neigh', 'flush', 'to', fabric.ipv6], { namespace, allowFailure: true });
}

/** Hard failure: the node's link goes down first (no goodbye on the wire), then all its processes are killed. */
export async function killNode(core: LabCore, node: string): Promise<void> {
  requireKind(core, node, 'node');
  const namespace = core.ns(node);
  await run(['ip', 'link', 'set', 'eth0', 'down'], { namespace });
  const hubPort = hubPortName(segmentOf(core.topology, 'fabric'), node);
  await run(['ip', 'link', 'set', hubPort, 'down'], { namespace: core.ns('router') });
  await killAll(await namespacePids(namespace));
  markKilled(core, node);
  appendEvent(core.id, { event: 'nodeKilled', host: node });
}

/**
 * Brings a node back (also one that was not killed): its processes are stopped, its links re-created (a link that
 * went down lost its routes and IPv6 addresses), then gobgpd and the agent started again.
 */
export async function restartNode(core: LabCore, node: string, readyTimeoutMs: number): Promise<void> {
  requireKind(core, node, 'node');
  await killAll(await namespacePids(core.ns(node)));
  markAlive(core, [node]);
  await core.runtime.startHost(core, node);
  await forgetRouterNeighborCache(core, node);
  // A drained node stays out of ECMP on purpose (the flag lives in etcd and survives the restart); flags that
  // cannot be read (etcd not answering) are taken as "not drained": the wait then says why it timed out.
  const drained = core.mode === 'agent' ? await readDrainFlags(core.topology) : undefined;
  if (!drained?.get(node)) {
    await waitInEcmp(
      core.topology,
      node,
      readyTimeoutMs,
      core.giveUp((host) => host === node || host === 'router'),
    );
  }
  appendEvent(core.id, { event: 'nodeRestarted', host: node });
}
