/**
 * The lab: one model (topology + state on disk) and its operations (up, add, kill, restart, fail, status), run
 * through a LabRuntime (netns or Docker) that only makes hosts. Every `lab` command is a new process, so all the lab
 * needs is in its state directory (state.ts); `down` also finds leftovers by name prefix (resources.ts).
 */
import { join } from 'node:path';
import { type FrrPaths, frrPaths } from '@l4fleet/daemons';
import { killAll, namespacePids, run } from '@l4fleet/process';
import type { Logger } from 'pino';
import { LabError } from '../errors.js';
import {
  attachmentOf,
  backendName,
  buildTopology,
  etcdMemberOf,
  hostOf,
  hostsOfKind,
  isEtcdMember,
  nextNodeIndex,
  nodeName,
  segmentOf,
  type Topology,
  type TopologyOptions,
} from '../topology/model.js';
import { dockerRuntime } from './docker-runtime.js';
import { applyDefaultFleet } from './fleet-apply.js';
import { addNeighbor } from './frr.js';
import { hostNamespace, type LabContext, type LabRuntime } from './lab-runtime.js';
import { hubPortName } from './netns-plan.js';
import { netnsRuntime } from './netns-runtime.js';
import { probe, waitEtcd, waitInEcmp, waitNextHops, waitVipsAnswer } from './readiness.js';
import { downLab, listLabResources, requireRoot } from './resources.js';
import {
  appendEvent,
  hostDir,
  type LabMode,
  type LabState,
  labDir,
  type Runtime,
  readState,
  recordPid,
  writeState,
} from './state.js';
import { collectStatus, type LabStatus, readDrainFlags } from './status.js';

export interface UpOptions extends TopologyOptions {
  /** `auto` (default): the agent if the built CLI has it, otherwise static announcements. */
  mode?: LabMode | 'auto';
  /** `netns` (default) or `docker` (containers from the locally built images, agent mode only). */
  runtime?: Runtime;
  /** Time for BGP sessions, ECMP routes and VIP answers; default 60 s. */
  readyTimeoutMs?: number;
  log?: Logger;
}

export const DEFAULT_READY_TIMEOUT_MS = 60_000;
const DEFAULT_ETCD_START_TIMEOUT_MS = 30_000;

const RUNTIMES: Readonly<Record<Runtime, LabRuntime>> = { netns: netnsRuntime, docker: dockerRuntime };

/** The topology a state describes: the hosts `up` made plus those added since. */
export function topologyOf(state: LabState): Topology {
  const { id, nodeIndexes, backends, clients, controlSlot, bfd } = state;
  return buildTopology({ id, nodeIndexes, backends, clients, controlSlot, etcdMembers: state.etcdMembers ?? 1, bfd });
}

export class Lab implements LabContext {
  private state: LabState;
  #topology: Topology;
  private readonly runtime: LabRuntime;

  private constructor(
    state: LabState,
    readonly log: Logger | undefined,
  ) {
    this.state = state;
    this.#topology = topologyOf(state);
    this.runtime = RUNTIMES[state.runtime];
  }

  get id(): string {
    return this.state.id;
  }

  get mode(): LabMode {
    return this.state.mode;
  }

  /** Computed once from the state, again only when hosts are added or the state is re-read. */
  get topology(): Topology {
    return this.#topology;
  }

  get killed(): readonly string[] {
    return this.state.killed;
  }

  /** The running lab `id`; throws LAB_NOT_RUNNING if there is none. */
  static open(id: string, log?: Logger): Lab {
    const state = readState(id);
    if (!state) throw new LabError('LAB_NOT_RUNNING', `lab "${id}" is not up (no state in ${labDir(id)})`);
    return new Lab(state, log);
  }

  /** Brings the lab up; idempotent: a lab that is already up and healthy is returned as it is. */
  static async up(options: UpOptions = {}): Promise<Lab> {
    requireRoot();
    const topology = buildTopology(options);
    const existing = readState(topology.id);
    if (existing) {
      const lab = new Lab(existing, options.log);
      if (await lab.healthy()) {
        options.log?.info({ event: 'labAlreadyUp', id: topology.id }, 'lab already up');
        return lab;
      }
      options.log?.warn({ event: 'labStale', id: topology.id }, 'removing a stale lab first');
    }
    await downLab(topology.id);
    const runtime = options.runtime ?? 'netns';
    const mode = await RUNTIMES[runtime].resolveMode(options.mode ?? 'auto');
    const state: LabState = {
      version: 1,
      id: topology.id,
      runtime,
      mode,
      controlSlot: topology.controlSlot,
      etcdMembers: topology.control.etcdMembers.length,
      ...(topology.bgp.bfd ? { bfd: topology.bgp.bfd } : {}),
      clients: hostsOfKind(topology, 'client').length,
      backends: hostsOfKind(topology, 'backend').length,
      nodeIndexes: [...topology.nodeIndexes],
      killed: [],
      pids: {},
      createdAt: new Date().toISOString(),
    };
    // Written before anything is made, so `down` after a crash from here on knows the lab.
    writeState(state);
    const lab = new Lab(state, options.log);
    try {
      await lab.build(options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS);
    } catch (err) {
      options.log?.error({ event: 'labUpFailed', err }, 'lab up failed; lab down removes what was made');
      throw err;
    }
    return lab;
  }

  ns(host: string): string {
    return hostNamespace(this.#topology, host);
  }

  hostDir(host: string): string {
    return hostDir(this.id, host);
  }

  recordPid(host: string, role: string, pid: number): void {
    recordPid(this.state, host, role, pid);
    this.save();
  }

  private save(): void {
    writeState(this.state);
  }

  /** Changes the state's host set and the topology with it. */
  private setHosts(change: Pick<LabState, 'nodeIndexes' | 'backends'>): void {
    this.state.nodeIndexes = [...change.nodeIndexes];
    this.state.backends = change.backends;
    this.#topology = topologyOf(this.state);
    this.save();
  }

  private routerPaths(): FrrPaths {
    return frrPaths(join(labDir(this.id), 'router'));
  }

  private async build(readyTimeoutMs: number): Promise<void> {
    const { topology } = this;
    const { runtime, mode } = this.state;
    this.log?.info({ event: 'topologyBuild', id: topology.id, mode, runtime }, 'building the lab');
    await this.runtime.build(this);
    await this.waitReady(readyTimeoutMs);
    this.state.upAt = new Date().toISOString();
    this.save();
    appendEvent(this.id, { event: 'labUp', detail: `${hostsOfKind(topology, 'node').length} nodes, mode ${mode}` });
  }

  /**
   * Ready: etcd answers, (agent mode) the default fleet is applied, the router has one next hop per live node, and
   * every VIP answers the client.
   */
  private async waitReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const left = () => Math.max(1_000, deadline - Date.now());
    await waitEtcd(this.topology, left());
    if (this.mode === 'agent') await applyDefaultFleet(this);
    const live = hostsOfKind(this.topology, 'node').filter((n) => !this.killed.includes(n.name));
    await waitNextHops(this.topology, live.length, left());
    await waitVipsAnswer(this.topology, left());
  }

  /**
   * Stops etcd members hard (SIGKILL; default: all), as crashed or partitioned members; `startEtcd` brings them back.
   * With a majority gone the cluster has no quorum: nothing is read or written until it is back.
   */
  async stopEtcd(names: readonly string[] = this.etcdMemberNames()): Promise<void> {
    const members = names.map((n) => etcdMemberOf(this.topology, n));
    for (const m of members) await this.runtime.stopEtcd(this, m, this.state.pids.control?.[m.name]);
    this.state.killed = [...new Set([...this.state.killed, ...names])];
    this.save();
    for (const m of members) appendEvent(this.id, { event: 'etcdStopped', host: m.name });
  }

  /**
   * Starts etcd members (default: all that were stopped; a running one is restarted) and, if a quorum then runs,
   * waits until they answer. A member started while the majority is still down waits for it, serving nothing.
   */
  async startEtcd(
    names: readonly string[] = this.etcdMemberNames().filter((n) => this.killed.includes(n)),
    timeoutMs = DEFAULT_ETCD_START_TIMEOUT_MS,
  ): Promise<void> {
    const members = names.map((n) => etcdMemberOf(this.topology, n));
    for (const m of members) {
      const pid = this.state.pids.control?.[m.name];
      if (!this.killed.includes(m.name)) await this.runtime.stopEtcd(this, m, pid);
      await this.runtime.startEtcd(this, m);
    }
    this.state.killed = this.state.killed.filter((n) => !names.includes(n));
    this.save();
    const all = this.topology.control.etcdMembers;
    const live = all.filter((m) => !this.killed.includes(m.name));
    if (live.length > all.length / 2) await waitEtcd(this.topology, timeoutMs, members);
    for (const m of members) appendEvent(this.id, { event: 'etcdStarted', host: m.name });
  }

  private etcdMemberNames(): string[] {
    return this.topology.control.etcdMembers.map((m) => m.name);
  }

  /**
   * Adds the next backend (identity server running); the fleet is not changed: `lab add-backend` applies the lab
   * fleet with it (`l4fleet apply`), or add it to a pool with `l4fleet member add`.
   */
  async addBackend(): Promise<string> {
    const name = backendName(this.state.backends + 1);
    this.setHosts({ nodeIndexes: this.state.nodeIndexes, backends: this.state.backends + 1 });
    await this.runtime.startHost(this, name);
    appendEvent(this.id, { event: 'backendAdded', host: name });
    return name;
  }

  /**
   * Fails a backend: everything in it dies (the identity server; in Docker its container), so its port refuses
   * connections, health checks mark it down and its TCP connections are reset. `restoreBackend` brings it back.
   */
  async failBackend(name: string): Promise<void> {
    this.requireKind(name, 'backend');
    await killAll(await namespacePids(this.ns(name)));
    if (!this.state.killed.includes(name)) this.state.killed = [...this.state.killed, name];
    this.save();
    appendEvent(this.id, { event: 'backendFailed', host: name });
  }

  /** Starts a backend's service again (also one that was not failed: it is restarted); health checks see it rise. */
  async restoreBackend(name: string): Promise<void> {
    this.requireKind(name, 'backend');
    await killAll(await namespacePids(this.ns(name)));
    this.state.killed = this.state.killed.filter((n) => n !== name);
    await this.runtime.restoreService(this, name);
    this.save();
    appendEvent(this.id, { event: 'backendRestored', host: name });
  }

  /** Reads the state again: hosts added or failed by other `lab` commands since this lab was opened. */
  refresh(): void {
    this.state = readState(this.id) ?? this.state;
    this.#topology = topologyOf(this.state);
  }

  /** Waits until the router's route to the TCP VIP has exactly `count` next hops. */
  waitNextHops(count: number, timeoutMs: number): Promise<string[]> {
    return waitNextHops(this.topology, count, timeoutMs);
  }

  /** Waits until the router routes the TCP VIP through `node` (its BGP session is up and it announces). */
  waitInEcmp(node: string, timeoutMs: number): Promise<void> {
    return waitInEcmp(this.topology, node, timeoutMs);
  }

  /** One request from `client` to a VIP (ncat for TCP, socat for UDP); returns the first line of the answer. */
  probe(client: string, vip: { address: string; port: number; protocol: string }): Promise<string> {
    return probe(this.topology, client, vip);
  }

  /** Every recorded process alive and every namespace present. */
  async healthy(): Promise<boolean> {
    // A lab whose `up` never finished (crash, timeout) is not healthy, however alive its processes are.
    if (!this.state.upAt) return false;
    const { namespaces } = await listLabResources(this.id);
    for (const h of this.topology.hosts) if (h.namespace && !namespaces.includes(h.namespace)) return false;
    for (const [host, roles] of Object.entries(this.state.pids)) {
      if (this.state.killed.includes(host)) continue;
      const running = await namespacePids(this.ns(host));
      // A killed etcd member is a role of the control host.
      for (const [role, pid] of Object.entries(roles)) {
        if (!this.state.killed.includes(role) && !running.includes(pid)) return false;
      }
    }
    return true;
  }

  /** Adds the next node and makes it the router's neighbor (the router dials it, frr.ts); returns its name. */
  async addNode(readyTimeoutMs = DEFAULT_READY_TIMEOUT_MS): Promise<string> {
    const index = nextNodeIndex(this.topology);
    const name = nodeName(index);
    this.setHosts({ nodeIndexes: [...this.state.nodeIndexes, index], backends: this.state.backends });
    await this.runtime.startHost(this, name);
    await this.forgetRouterNeighborCache(name);
    const address = attachmentOf(this.topology, 'fabric', name).ipv4;
    await addNeighbor(this.ns('router'), this.routerPaths(), this.topology, address);
    await this.waitInEcmp(name, readyTimeoutMs);
    appendEvent(this.id, { event: 'nodeAdded', host: name });
    return name;
  }

  /**
   * The re-created link has a new MAC address, but the router's ARP / ND entry for the node still holds the old one
   * (REACHABLE, then STALE for ~5 s before it probes again). The router dials the node (frr.ts), so its SYNs would go
   * to a MAC that no longer exists until then: measured 6-9 s instead of ~1 s for a restart. Flushing the entries
   * makes the router resolve the node afresh on its next packet.
   */
  private async forgetRouterNeighborCache(node: string): Promise<void> {
    const fabric = attachmentOf(this.topology, 'fabric', node);
    const namespace = this.ns('router');
    await run(['ip', 'neigh', 'flush', 'to', fabric.ipv4], { namespace, allowFailure: true });
    if (fabric.ipv6) await run(['ip', '-6', 'neigh', 'flush', 'to', fabric.ipv6], { namespace, allowFailure: true });
  }

  /**
   * Hard failure: the node's link goes down first (no goodbye on the wire), then all its processes are killed.
   * An etcd member's name (`etcd2`) kills that member only (stopEtcd).
   */
  async kill(node: string): Promise<void> {
    if (isEtcdMember(this.topology, node)) return this.stopEtcd([node]);
    this.requireKind(node, 'node');
    const namespace = this.ns(node);
    await run(['ip', 'link', 'set', 'eth0', 'down'], { namespace });
    const hubPort = hubPortName(segmentOf(this.topology, 'fabric'), node);
    await run(['ip', 'link', 'set', hubPort, 'down'], { namespace: this.ns('router') });
    await killAll(await namespacePids(namespace));
    if (!this.state.killed.includes(node)) this.state.killed = [...this.state.killed, node];
    this.save();
    appendEvent(this.id, { event: 'nodeKilled', host: node });
  }

  /**
   * Brings a node back (also one that was not killed): its processes are stopped, its links re-created (a link that
   * went down lost its routes and IPv6 addresses), then gobgpd and the agent started again.
   */
  async restart(node: string, readyTimeoutMs = DEFAULT_READY_TIMEOUT_MS): Promise<void> {
    if (isEtcdMember(this.topology, node)) return this.startEtcd([node], readyTimeoutMs);
    this.requireKind(node, 'node');
    await killAll(await namespacePids(this.ns(node)));
    this.state.killed = this.state.killed.filter((n) => n !== node);
    this.save();
    await this.runtime.startHost(this, node);
    await this.forgetRouterNeighborCache(node);
    // A drained node stays out of ECMP on purpose (the flag lives in etcd and survives the restart); flags that
    // cannot be read (etcd not answering) are taken as "not drained": the wait then says why it timed out.
    const drained = this.mode === 'agent' ? await readDrainFlags(this.topology) : undefined;
    if (!drained?.get(node)) await this.waitInEcmp(node, readyTimeoutMs);
    appendEvent(this.id, { event: 'nodeRestarted', host: node });
  }

  private requireKind(host: string, kind: 'node' | 'backend'): void {
    if (hostOf(this.topology, host).kind !== kind) {
      throw new LabError('HOST_UNKNOWN', `host "${host}" is not a ${kind} of lab "${this.id}"`);
    }
  }

  /** argv that runs `argv` inside `host` (for `lab exec`). */
  execArgv(host: string, argv: readonly string[]): string[] {
    const h = hostOf(this.topology, host);
    return h.namespace ? ['ip', 'netns', 'exec', h.namespace, ...argv] : [...argv];
  }

  status(): Promise<LabStatus> {
    const { id, runtime, mode, killed } = this.state;
    return collectStatus({ id, runtime, mode, killed, topology: this.topology, vtyDir: this.routerPaths().vtyDir });
  }

  async down(): Promise<void> {
    await downLab(this.id);
  }
}
