/**
 * The netns runtime: a whole lab in network namespaces on this machine. Every command is a new process, so all it
 * needs is in the state directory (state.ts); `down` also finds leftovers by name prefix after a crash.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { LabError } from '../errors.js';
import { vipSpec } from '../topology/containerlab.js';
import {
  attachmentOf,
  backendName,
  buildTopology,
  hostIfaceOf,
  hostOf,
  hostsOfKind,
  LAB_PREFIX,
  nextNodeIndex,
  nodeName,
  segmentOf,
  type Topology,
  type TopologyOptions,
  VIP_TCP,
} from '../topology/model.js';
import { agentArgv, agentAvailable, agentConfigPath, agentYaml, cliBin } from './agent.js';
import { etcdArgv, natsArgv } from './control.js';
import { backendListen, createContainer, dockerAvailable, releaseContainer, removeLabContainers } from './docker.js';
import { run, runScript, sleep, startDaemon, waitFor } from './exec.js';
import { applyDefaultFleet } from './fleet-apply.js';
import { addNeighbor, type FrrPaths, frrDaemonArgv, parseBgpSummary, prepareFrr, vtysh } from './frr.js';
import { announce, announced, gobgpdArgv, gobgpdStaticConfig } from './gobgp.js';
import { hostScript, hubPortName, topologyScript } from './netns-plan.js';
import { OBSERVE_TABLE, observeRuleset, STATIC_TABLE, staticForwarderRuleset } from './nft.js';
import { killAll, namespacePids } from './processes.js';
import { scriptArgv } from './scripts.js';
import {
  appendEvent,
  hostDir,
  type LabMode,
  type LabState,
  labDir,
  type Runtime,
  readState,
  recordPid,
  removeState,
  writeState,
} from './state.js';
import { type LabStatus, routerNextHops } from './status.js';

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

export function labFromState(state: LabState): Topology {
  return buildTopology({
    id: state.id,
    nodeIndexes: state.nodeIndexes,
    backends: state.backends,
    clients: state.clients,
    controlSlot: state.controlSlot,
  });
}

function requireRoot(): void {
  if (process.getuid?.() !== 0) throw new LabError('NOT_ROOT', 'the lab needs root (namespaces, nftables, FRR)');
}

export class NetnsLab {
  private constructor(
    private state: LabState,
    private readonly log: Logger | undefined,
  ) {}

  get id(): string {
    return this.state.id;
  }

  get mode(): LabMode {
    return this.state.mode;
  }

  get topology(): Topology {
    return labFromState(this.state);
  }

  get killed(): readonly string[] {
    return this.state.killed;
  }

  /** The running lab `id`; throws LAB_NOT_RUNNING if there is none. */
  static open(id: string, log?: Logger): NetnsLab {
    const state = readState(id);
    if (!state) throw new LabError('LAB_NOT_RUNNING', `lab "${id}" is not up (no state in ${labDir(id)})`);
    return new NetnsLab(state, log);
  }

  /** Brings the lab up; idempotent: a lab that is already up and healthy is returned as it is. */
  static async up(options: UpOptions = {}): Promise<NetnsLab> {
    requireRoot();
    const topology = buildTopology(options);
    const existing = readState(topology.id);
    if (existing) {
      const lab = new NetnsLab(existing, options.log);
      if (await lab.healthy()) {
        options.log?.info({ event: 'labAlreadyUp', id: topology.id }, 'lab already up');
        return lab;
      }
      options.log?.warn({ event: 'labStale', id: topology.id }, 'removing a stale lab first');
    }
    await downLab(topology.id);
    const runtime = options.runtime ?? 'netns';
    const wanted = options.mode ?? 'auto';
    let mode: LabMode = wanted === 'auto' ? ((await agentAvailable()) ? 'agent' : 'static') : wanted;
    if (runtime === 'docker') {
      if (wanted === 'static')
        throw new LabError('RUNTIME_UNSUPPORTED', '--runtime docker runs the agent: no static mode');
      if (!(await dockerAvailable())) {
        throw new LabError(
          'RUNTIME_UNSUPPORTED',
          '--runtime docker: no Docker engine answers (start dockerd, set DOCKER_HOST, build the images with deploy/docker/build-images.sh)',
        );
      }
      mode = 'agent';
    }
    const state: LabState = {
      version: 1,
      id: topology.id,
      runtime,
      mode,
      controlSlot: topology.controlSlot,
      clients: hostsOfKind(topology, 'client').length,
      backends: hostsOfKind(topology, 'backend').length,
      nodeIndexes: hostsOfKind(topology, 'node').map((h) => Number(h.name.slice(4))),
      killed: [],
      pids: {},
      createdAt: new Date().toISOString(),
    };
    // Written before anything is made, so `down` after a crash from here on knows the lab.
    writeState(state);
    const lab = new NetnsLab(state, options.log);
    try {
      await lab.build(options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS);
    } catch (err) {
      options.log?.error({ event: 'labUpFailed', err }, 'lab up failed; lab down removes what was made');
      throw err;
    }
    return lab;
  }

  private save(): void {
    writeState(this.state);
  }

  private ns(host: string): string {
    const n = hostOf(this.topology, host).namespace;
    if (!n) throw new LabError('HOST_UNKNOWN', `host "${host}" has no namespace`);
    return n;
  }

  private async build(readyTimeoutMs: number): Promise<void> {
    const topology = this.topology;
    this.log?.info(
      { event: 'topologyBuild', id: topology.id, mode: this.state.mode, runtime: this.state.runtime },
      'building the lab',
    );
    if (this.state.runtime === 'docker') {
      await this.buildContainers();
    } else {
      await runScript(topologyScript(topology));
      await this.startControl();
      await this.startRouter();
      for (const b of hostsOfKind(topology, 'backend')) await this.startBackend(b.name);
      for (const n of hostsOfKind(topology, 'node')) await this.startNode(n.name);
    }
    this.save();
    await this.waitReady(readyTimeoutMs);
    this.state.upAt = new Date().toISOString();
    this.save();
    appendEvent(this.id, {
      event: 'labUp',
      detail: `${hostsOfKind(topology, 'node').length} nodes, mode ${this.mode}`,
    });
  }

  /** Docker runtime: configs first (containers mount them), every container, the shared wiring, then release. */
  private async buildContainers(): Promise<void> {
    const topology = this.topology;
    prepareFrr(topology, hostDir(this.id, 'router'));
    for (const n of hostsOfKind(topology, 'node')) this.writeAgentConfig(n.name);
    for (const h of topology.hosts) if (h.kind !== 'host') await this.createContainerFor(h.name);
    await runScript(topologyScript(topology));
    for (const n of hostsOfKind(topology, 'node')) await this.observe(n.name);
    for (const h of topology.hosts) if (h.kind !== 'host') await releaseContainer(h);
  }

  private async createContainerFor(host: string): Promise<void> {
    const pid = await createContainer(this.topology, hostOf(this.topology, host), (h) => hostDir(this.id, h));
    recordPid(this.state, host, 'container', pid);
    this.save();
  }

  private writeAgentConfig(node: string): string {
    const conf = agentConfigPath(hostDir(this.id, node));
    writeFileSync(conf, agentYaml(this.topology, node, hostDir(this.id, node)));
    return conf;
  }

  /** The lab's observe table on the node's fabric interface (which node carries which flow). */
  private async observe(node: string): Promise<void> {
    const ns = this.ns(node);
    const fabric = attachmentOf(this.topology, 'fabric', node);
    await run(['nft', 'delete', 'table', 'netdev', OBSERVE_TABLE], { namespace: ns, allowFailure: true });
    await run(['nft', '-f', '-'], { namespace: ns, input: observeRuleset(fabric.iface) });
  }

  /** Docker runtime: a (new) container for one host, wired and released. */
  private async replaceContainer(host: string): Promise<void> {
    if (hostOf(this.topology, host).kind === 'node') this.writeAgentConfig(host);
    await this.createContainerFor(host);
    await runScript(hostScript(this.topology, host));
    if (hostOf(this.topology, host).kind === 'node') await this.observe(host);
    await releaseContainer(hostOf(this.topology, host));
  }

  private startControl(): Promise<void> {
    const dir = hostDir(this.id, 'control');
    const ns = this.ns('control');
    const etcd = startDaemon(etcdArgv(this.topology, dir), { namespace: ns, logFile: join(dir, 'etcd.log') });
    recordPid(this.state, 'control', 'etcd', etcd.pid);
    const nats = startDaemon(natsArgv(this.topology, dir), { namespace: ns, logFile: join(dir, 'nats.log') });
    recordPid(this.state, 'control', 'nats', nats.pid);
    this.save();
    return Promise.resolve();
  }

  private frrPaths(): FrrPaths {
    const dir = join(labDir(this.id), 'router');
    return { dir, vtyDir: join(dir, 'vty'), zservSocket: join(dir, 'zserv.api') };
  }

  private async startRouter(): Promise<void> {
    const dir = hostDir(this.id, 'router');
    const paths = prepareFrr(this.topology, dir);
    const ns = this.ns('router');
    const zebra = startDaemon(frrDaemonArgv('zebra', paths), { namespace: ns, logFile: join(dir, 'zebra.log') });
    recordPid(this.state, 'router', 'zebra', zebra.pid);
    await waitFor('zebra socket', async () => (existsSync(paths.zservSocket) ? true : undefined), 10_000, 50);
    const bgpd = startDaemon(frrDaemonArgv('bgpd', paths), { namespace: ns, logFile: join(dir, 'bgpd.log') });
    recordPid(this.state, 'router', 'bgpd', bgpd.pid);
    this.save();
  }

  private async startBackend(name: string): Promise<void> {
    const dir = hostDir(this.id, name);
    const listen = backendListen(this.topology, name);
    const argv = [...scriptArgv('identity/main'), '--name', name, ...listen.flatMap((l) => ['--listen', l])];
    const p = startDaemon(argv, { namespace: this.ns(name), logFile: join(dir, 'identity.log') });
    recordPid(this.state, name, 'identity', p.pid);
  }

  /** gobgpd sidecar, then the agent (agent mode) or static announcements + forwarder (static mode). */
  private async startNode(name: string): Promise<void> {
    const topology = this.topology;
    const dir = hostDir(this.id, name);
    const ns = this.ns(name);
    const fabric = attachmentOf(topology, 'fabric', name);
    await this.observe(name);
    if (this.state.mode === 'static') {
      const conf = join(dir, 'gobgpd.toml');
      writeFileSync(conf, gobgpdStaticConfig(topology, name));
      const g = startDaemon(gobgpdArgv(conf), { namespace: ns, logFile: join(dir, 'gobgpd.log') });
      recordPid(this.state, name, 'gobgpd', g.pid);
      await waitFor(`gobgpd API on ${name}`, async () => ((await announced(ns)) ? true : undefined), 10_000, 100);
      await run(['nft', 'delete', 'table', 'netdev', STATIC_TABLE], { namespace: ns, allowFailure: true });
      await run(['nft', '-f', '-'], { namespace: ns, input: staticForwarderRuleset(topology, fabric.iface) });
      for (const vip of topology.vips) {
        const v6 = vip.address.includes(':');
        await announce(ns, `${vip.address}/${v6 ? 128 : 32}`, v6 ? (fabric.ipv6 ?? '') : fabric.ipv4);
      }
    } else {
      const g = startDaemon(gobgpdArgv(), { namespace: ns, logFile: join(dir, 'gobgpd.log') });
      recordPid(this.state, name, 'gobgpd', g.pid);
      const conf = this.writeAgentConfig(name);
      const a = startDaemon(agentArgv(conf), { namespace: ns, logFile: join(dir, 'agent.log') });
      recordPid(this.state, name, 'agent', a.pid);
    }
    this.save();
  }

  /**
   * Ready: etcd answers, (agent mode) the default fleet is applied, the router has one next hop per live node, and
   * every VIP answers the client.
   */
  private async waitReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const left = () => Math.max(1_000, deadline - Date.now());
    await this.waitEtcd(left());
    if (this.state.mode === 'agent') await applyDefaultFleet(this);
    const live = hostsOfKind(this.topology, 'node').filter((n) => !this.state.killed.includes(n.name));
    await this.waitNextHops(live.length, left());
    await this.waitVipsAnswer(left());
  }

  private waitEtcd(timeoutMs: number): Promise<boolean> {
    const endpoints = this.topology.control.etcdEndpoints.join(',');
    return waitFor(
      'etcd',
      async () => {
        const r = await run(['etcdctl', '--endpoints', endpoints, 'endpoint', 'health'], {
          allowFailure: true,
          timeoutMs: 5_000,
        });
        return r.code === 0 ? true : undefined;
      },
      timeoutMs,
      200,
    );
  }

  /** Stops etcd hard (SIGKILL), as a crashed or partitioned control plane; `startEtcd` brings it back. */
  async stopEtcd(): Promise<void> {
    this.requireNetns('stopEtcd');
    const pid = this.state.pids.control?.etcd;
    if (pid !== undefined) await killAll([pid]);
    appendEvent(this.id, { event: 'etcdStopped', host: 'control' });
  }

  async startEtcd(timeoutMs = 30_000): Promise<void> {
    this.requireNetns('startEtcd');
    const dir = hostDir(this.id, 'control');
    const etcd = startDaemon(etcdArgv(this.topology, dir), {
      namespace: this.ns('control'),
      logFile: join(dir, 'etcd.log'),
    });
    recordPid(this.state, 'control', 'etcd', etcd.pid);
    this.save();
    await this.waitEtcd(timeoutMs);
    appendEvent(this.id, { event: 'etcdStarted', host: 'control' });
  }

  /**
   * Adds the next backend (identity server running); the fleet is not changed: `lab add-backend` applies the lab
   * fleet with it (`l4fleet apply`), or add it to a pool with `l4fleet member add`.
   */
  async addBackend(): Promise<string> {
    const name = backendName(this.state.backends + 1);
    this.state.backends += 1;
    this.save();
    if (this.state.runtime === 'docker') await this.replaceContainer(name);
    else {
      await runScript(hostScript(this.topology, name));
      await this.startBackend(name);
    }
    this.save();
    appendEvent(this.id, { event: 'backendAdded', host: name });
    return name;
  }

  /**
   * Fails a backend: everything in it dies (the identity server; in Docker its container), so its port refuses
   * connections, health checks mark it down and its TCP connections are reset. `restoreBackend` brings it back.
   */
  async failBackend(name: string): Promise<void> {
    this.requireBackend(name);
    await killAll(await namespacePids(this.ns(name)));
    if (!this.state.killed.includes(name)) this.state.killed = [...this.state.killed, name];
    this.save();
    appendEvent(this.id, { event: 'backendFailed', host: name });
  }

  /** Starts a backend's service again (also one that was not failed: it is restarted); health checks see it rise. */
  async restoreBackend(name: string): Promise<void> {
    this.requireBackend(name);
    await killAll(await namespacePids(this.ns(name)));
    this.state.killed = this.state.killed.filter((n) => n !== name);
    // Docker: the container exited with its service; a new one is created and wired like one added later.
    if (this.state.runtime === 'docker') await this.replaceContainer(name);
    else await this.startBackend(name);
    this.save();
    appendEvent(this.id, { event: 'backendRestored', host: name });
  }

  /** Reads the state again: hosts added or failed by other `lab` commands since this lab was opened. */
  refresh(): void {
    this.state = readState(this.id) ?? this.state;
  }

  /** Waits until the router's route to the TCP VIP has exactly `count` next hops. */
  async waitNextHops(count: number, timeoutMs: number): Promise<string[]> {
    const vip = this.topology.vips[0];
    if (!vip) return [];
    return waitFor(
      `router ECMP route ${vip.address}/32 with ${count} next hops`,
      async () => {
        const hops = await routerNextHops(this.ns('router'), `${vip.address}/32`);
        return hops.length === count ? hops : undefined;
      },
      timeoutMs,
      100,
    );
  }

  /** Waits until the router routes the TCP VIP through `node` (its BGP session is up and it announces). */
  async waitInEcmp(node: string, timeoutMs: number): Promise<void> {
    const address = attachmentOf(this.topology, 'fabric', node).ipv4;
    await waitFor(
      `router ECMP route ${VIP_TCP.address}/32 via ${node} (${address})`,
      async () =>
        (await routerNextHops(this.ns('router'), `${VIP_TCP.address}/32`)).includes(address) ? true : undefined,
      timeoutMs,
      100,
    );
  }

  private async waitVipsAnswer(timeoutMs: number): Promise<void> {
    const client = hostsOfKind(this.topology, 'client')[0]?.name ?? 'client';
    for (const vip of this.topology.vips) {
      await waitFor(
        `VIP ${vipSpec(vip)} answering the client`,
        async () => ((await this.probe(client, vip)).startsWith('backend=') ? true : undefined),
        timeoutMs,
        300,
      );
    }
  }

  /** One request from `client` to a VIP (ncat for TCP, socat for UDP); returns the first line of the answer. */
  async probe(client: string, vip: { address: string; port: number; protocol: string }): Promise<string> {
    // UDP with socat, not `ncat -u`: ncat exits as soon as its stdin ends, and on an idle machine that is before
    // the answer arrives (the client then counts UdpNoPorts); socat waits `-t` seconds for it after the EOF.
    const argv =
      vip.protocol === 'udp'
        ? ['socat', '-T', '2', '-t', '0.5', '-', `UDP:${udpHost(vip.address)}:${vip.port}`]
        : ['ncat', '-w', '2', vip.address, String(vip.port)];
    const r = await run(argv, { namespace: this.ns(client), input: 'probe\n', allowFailure: true, timeoutMs: 5_000 });
    return r.stdout.split('\n')[0] ?? '';
  }

  /** Every recorded process alive and every namespace present. */
  async healthy(): Promise<boolean> {
    // A lab whose `up` never finished (crash, timeout) is not healthy, however alive its processes are.
    if (!this.state.upAt) return false;
    const { namespaces } = await listLabResources(this.id);
    for (const h of this.topology.hosts) if (h.namespace && !namespaces.includes(h.namespace)) return false;
    for (const [host, roles] of Object.entries(this.state.pids)) {
      if (this.state.killed.includes(host)) continue;
      for (const pid of Object.values(roles)) {
        if (!(await pidInNamespace(pid, this.ns(host)))) return false;
      }
    }
    return true;
  }

  /** Adds the next node and makes it the router's neighbor (the router dials it, frr.ts); returns its name. */
  async addNode(readyTimeoutMs = DEFAULT_READY_TIMEOUT_MS): Promise<string> {
    const name = nodeName(nextNodeIndex(this.topology));
    this.state.nodeIndexes = [...this.state.nodeIndexes, Number(name.slice(4))];
    this.save();
    if (this.state.runtime === 'docker') await this.replaceContainer(name);
    else {
      await runScript(hostScript(this.topology, name));
      await this.startNode(name);
    }
    await this.forgetRouterNeighborCache(name);
    const topology = this.topology;
    await addNeighbor(this.ns('router'), this.frrPaths(), topology, attachmentOf(topology, 'fabric', name).ipv4);
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
    const router = this.ns('router');
    await run(['ip', 'neigh', 'flush', 'to', fabric.ipv4], { namespace: router, allowFailure: true });
    if (fabric.ipv6)
      await run(['ip', '-6', 'neigh', 'flush', 'to', fabric.ipv6], { namespace: router, allowFailure: true });
  }

  /** Hard failure: the node's link goes down first (no goodbye on the wire), then all its processes are killed. */
  async kill(node: string): Promise<void> {
    this.requireNode(node);
    const ns = this.ns(node);
    await run(['ip', 'link', 'set', 'eth0', 'down'], { namespace: ns });
    await run(['ip', 'link', 'set', hubPortName(segmentOf(this.topology, 'fabric'), node), 'down'], {
      namespace: this.ns('router'),
    });
    await killAll(await namespacePids(ns));
    if (!this.state.killed.includes(node)) this.state.killed = [...this.state.killed, node];
    this.save();
    appendEvent(this.id, { event: 'nodeKilled', host: node });
  }

  /**
   * Brings a node back (also one that was not killed): its processes are stopped, its links re-created (a link that
   * went down lost its routes and IPv6 addresses), then gobgpd and the agent started again.
   */
  async restart(node: string, readyTimeoutMs = DEFAULT_READY_TIMEOUT_MS): Promise<void> {
    this.requireNode(node);
    await killAll(await namespacePids(this.ns(node)));
    this.state.killed = this.state.killed.filter((n) => n !== node);
    if (this.state.runtime === 'docker') await this.replaceContainer(node);
    else {
      await runScript(hostScript(this.topology, node));
      await this.startNode(node);
    }
    await this.forgetRouterNeighborCache(node);
    // A drained node stays out of ECMP on purpose (the flag lives in etcd and survives the restart).
    if (!(await this.drainFlags()).get(node)) await this.waitInEcmp(node, readyTimeoutMs);
    appendEvent(this.id, { event: 'nodeRestarted', host: node });
  }

  private requireNetns(what: string): void {
    if (this.state.runtime !== 'netns') {
      throw new LabError(
        'RUNTIME_UNSUPPORTED',
        `${what}: only the netns runtime (lab "${this.id}" runs on ${this.state.runtime})`,
      );
    }
  }

  private requireBackend(name: string): void {
    if (hostOf(this.topology, name).kind !== 'backend') {
      throw new LabError('HOST_UNKNOWN', `host "${name}" is not a backend of lab "${this.id}"`);
    }
  }

  private requireNode(node: string): void {
    if (hostOf(this.topology, node).kind !== 'node') {
      throw new LabError('HOST_UNKNOWN', `host "${node}" is not a node of lab "${this.id}"`);
    }
  }

  /** argv that runs `argv` inside `host` (for `lab exec`). */
  execArgv(host: string, argv: readonly string[]): string[] {
    const h = hostOf(this.topology, host);
    return h.namespace ? ['ip', 'netns', 'exec', h.namespace, ...argv] : [...argv];
  }

  async status(): Promise<LabStatus> {
    const topology = this.topology;
    const router = this.ns('router');
    const paths = this.frrPaths();
    const summary = parseBgpSummary(await vtysh(router, paths, 'show bgp ipv4 unicast summary json').catch(() => '{}'));
    const drained = this.state.mode === 'agent' ? await this.drainFlags() : new Map<string, boolean>();
    const nodes = [];
    for (const n of hostsOfKind(topology, 'node')) {
      const fabric = attachmentOf(topology, 'fabric', n.name);
      const killed = this.state.killed.includes(n.name);
      const peer = summary.find((p) => p.address === fabric.ipv4);
      nodes.push({
        name: n.name,
        address: fabric.ipv4,
        bgp: peer?.state ?? 'Idle',
        killed,
        drained: drained.get(n.name) ?? null,
        announced: killed ? [] : await announced(n.namespace ?? '').catch(() => []),
      });
    }
    const nextHops: Record<string, string[]> = {};
    for (const vip of topology.vips) {
      const prefix = `${vip.address}/${vip.address.includes(':') ? 128 : 32}`;
      nextHops[prefix] = await routerNextHops(router, prefix);
    }
    return {
      id: this.id,
      runtime: this.state.runtime,
      mode: this.state.mode,
      etcd: { endpoints: [...topology.control.etcdEndpoints] },
      nats: { url: topology.control.natsUrl },
      vips: topology.vips.map((v) => ({ name: v.name, address: v.address, port: v.port, protocol: v.protocol })),
      nodes,
      backends: hostsOfKind(topology, 'backend').map((b) => ({
        name: b.name,
        address: attachmentOf(topology, 'fabric', b.name).ipv4,
        failed: this.state.killed.includes(b.name),
      })),
      clients: hostsOfKind(topology, 'client').map((c) => ({
        name: c.name,
        address: attachmentOf(topology, `access-${c.name}`, c.name).ipv4,
      })),
      router: { asn: topology.bgp.routerAsn, address: topology.bgp.routerAddress, nextHops },
    };
  }

  /** Drain flags from the control plane (`l4fleet status`); empty while etcd does not answer. */
  private async drainFlags(): Promise<Map<string, boolean>> {
    if (this.state.mode !== 'agent') return new Map();
    const etcd = this.topology.control.etcdEndpoints.join(',');
    const r = await run([process.execPath, cliBin(), '--etcd', etcd, 'status', '-o', 'json'], {
      allowFailure: true,
      timeoutMs: 10_000,
    }).catch(() => undefined); // a CLI that times out (etcd not answering yet) means "no flags known", as a failure does
    if (r?.code !== 0) return new Map();
    try {
      const doc = JSON.parse(r.stdout) as { nodes?: { name: string; drained?: boolean }[] };
      return new Map((doc.nodes ?? []).map((n) => [n.name, Boolean(n.drained)]));
    } catch {
      return new Map();
    }
  }

  async down(): Promise<void> {
    await downLab(this.id);
  }
}

function udpHost(address: string): string {
  return address.includes(':') ? `[${address}]` : address;
}

async function pidInNamespace(pid: number, namespace: string): Promise<boolean> {
  return (await namespacePids(namespace)).includes(pid);
}

export interface LabResources {
  readonly namespaces: string[];
  readonly hostInterfaces: string[];
}

/** What exists of lab `id` right now, found by name prefix (not from the state file). */
export async function listLabResources(id: string): Promise<LabResources> {
  const prefix = `${LAB_PREFIX}${id}-`;
  const nsList = await run(['ip', 'netns', 'list'], { allowFailure: true });
  const namespaces = nsList.stdout
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n.startsWith(prefix));
  const links = await run(['ip', '-o', 'link', 'show'], { allowFailure: true });
  const hostInterfaces = links.stdout
    .split('\n')
    .map((l) => (l.split(': ')[1] ?? '').split('@')[0] ?? '')
    .filter((n) => n === hostIfaceOf(id));
  return { namespaces, hostInterfaces };
}

/** Removes every process, namespace, interface and state file of lab `id`; works without (or with a broken) state. */
export async function downLab(id: string): Promise<LabResources> {
  requireRoot();
  const found = await listLabResources(id);
  let state: LabState | undefined;
  try {
    state = readState(id);
  } catch {
    state = undefined;
  }
  const pids = new Set<number>();
  for (const roles of Object.values(state?.pids ?? {})) {
    for (const pid of Object.values(roles)) if (await pidOwnedByLab(pid, id)) pids.add(pid);
  }
  for (const ns of found.namespaces) for (const pid of await namespacePids(ns)) pids.add(pid);
  await killAll([...pids]);
  for (const ns of found.namespaces) await run(['ip', 'netns', 'del', ns], { allowFailure: true });
  for (const iface of found.hostInterfaces) await run(['ip', 'link', 'del', iface], { allowFailure: true });
  await removeLabContainers(id);
  removeState(id);
  // The kernel frees a namespace once its last process is gone; give it a moment so a following up starts clean.
  await sleep(50);
  return found;
}

/** A recorded pid may have been reused after a reboot: only kill it if it still runs in one of the lab's namespaces. */
async function pidOwnedByLab(pid: number, id: string): Promise<boolean> {
  const r = await run(['ip', 'netns', 'identify', String(pid)], { allowFailure: true, timeoutMs: 5_000 });
  return r.stdout.trim().startsWith(`${LAB_PREFIX}${id}-`);
}

export async function listLabIds(): Promise<string[]> {
  const nsList = await run(['ip', 'netns', 'list'], { allowFailure: true });
  const ids = new Set<string>();
  for (const line of nsList.stdout.split('\n')) {
    const m = /^l4f-([a-z0-9]{1,8})-/.exec(line);
    if (m?.[1]) ids.add(m[1]);
  }
  return [...ids].sort();
}
