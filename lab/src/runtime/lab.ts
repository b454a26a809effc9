/**
 * The lab: one model (topology + state on disk) and its operations (up, add, kill, restart, fail, status), run
 * through a LabRuntime (netns or Docker) that only makes hosts. Every `lab` command is a new process, so all the lab
 * needs is in its state directory (state.ts); `down` also finds leftovers by name prefix (resources.ts).
 * The operations live in a module per job (lab-nodes.ts, lab-backends.ts, lab-etcd.ts; for `up`: lab-up.ts,
 * lab-ready.ts, lab-health.ts) and see the lab as a LabCore (lab-core.ts); this class holds the state and hands them
 * that view. Its options are in lab-options.ts.
 */
import type { Logger } from 'pino';
import { LabError } from '../errors.js';
import { buildTopology, hostOf, hostsOfKind, isEtcdMember, type Topology } from '../topology/model.js';
import { DaemonExits, type WatchedChild } from './daemon-exits.js';
import { labDashboard, restartLabDashboard, startLabDashboard } from './dashboard.js';
import { applyDefaultFleet, labFleetFile } from './fleet-apply.js';
import { addBackend, failBackend, restoreBackend } from './lab-backends.js';
import { type LabCore, routerPaths } from './lab-core.js';
import { DEFAULT_ETCD_START_TIMEOUT_MS, etcdMemberNames, startEtcd, stopEtcd } from './lab-etcd.js';
import { labHealthy } from './lab-health.js';
import { addNode, killNode, restartNode } from './lab-nodes.js';
import { type AddBackendOptions, DEFAULT_READY_TIMEOUT_MS, type OpenOptions, type UpOptions } from './lab-options.js';
import { waitLabReady } from './lab-ready.js';
import { hostNamespace, type LabContext, type LabRuntime } from './lab-runtime.js';
import { planLabState, RUNTIMES } from './lab-up.js';
import { withLabLock } from './lock.js';
import { probe, waitInEcmp, waitNextHops } from './readiness.js';
import { downLab, type LabDown, requireRoot } from './resources.js';
import {
  appendEvent,
  hostDir,
  type LabMode,
  type LabState,
  labDir,
  readState,
  readStateForUp,
  recordPid,
  writeState,
} from './state.js';
import { topologyOf } from './state-check.js';
import { collectStatus, type LabStatus } from './status.js';
import { refuseUpConflicts } from './up-conflicts.js';

export {
  type AddBackendOptions,
  DEFAULT_READY_TIMEOUT_MS,
  type OpenOptions,
  type UpOptions,
} from './lab-options.js';

export { topologyOf };

export class Lab implements LabContext {
  private state: LabState;
  #topology: Topology;
  private readonly runtime: LabRuntime;
  /** The view the operation modules get; reads through to this lab, so `refresh` is seen everywhere. */
  readonly #core: LabCore;
  /** Exits of the daemons this process started for the lab: the waits give up naming one that died. */
  readonly #exits = new DaemonExits();

  private constructor(
    state: LabState,
    readonly log: Logger | undefined,
    private readonly lockWaitMs?: number,
  ) {
    this.state = state;
    this.#topology = topologyOf(state);
    this.runtime = RUNTIMES[state.runtime];
    this.#core = this.makeCore();
  }

  private makeCore(): LabCore {
    const lab = this;
    return {
      get id() {
        return lab.id;
      },
      get topology() {
        return lab.topology;
      },
      get mode() {
        return lab.mode;
      },
      get log() {
        return lab.log;
      },
      get state() {
        return lab.state;
      },
      get runtime() {
        return lab.runtime;
      },
      ns: (host) => lab.ns(host),
      hostDir: (host) => lab.hostDir(host),
      recordPid: (host, role, pid) => lab.recordPid(host, role, pid),
      watchDaemon: (child, host, role, logFile) => lab.watchDaemon(child, host, role, logFile),
      giveUp: (match) => lab.giveUp(match),
      save: () => lab.save(),
      setHosts: (change) => lab.setHosts(change),
    };
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
  static open(id: string, log?: Logger, options: OpenOptions = {}): Lab {
    return new Lab(requireState(id), log, options.lockWaitMs);
  }

  /**
   * Removes every process, namespace and file of lab `id` (resources.ts), holding its lock: a command still changing
   * the lab ends first (or `down` fails naming it after `lockWaitMs`).
   */
  static down(id: string, log?: Logger, options: OpenOptions = {}): Promise<LabDown> {
    return withLabLock(id, 'down', () => downLab(id), { waitMs: options.lockWaitMs, log });
  }

  /**
   * Runs one command that changes the lab under its lock (lock.ts), on the state as it is once the lock is held:
   * another command may have changed it since this lab was opened.
   */
  private locked<T>(command: string, fn: () => Promise<T>): Promise<T> {
    return withLabLock(
      this.id,
      command,
      async () => {
        this.state = requireState(this.id);
        this.#topology = topologyOf(this.state);
        return fn();
      },
      { waitMs: this.lockWaitMs, log: this.log },
    );
  }

  /** Brings the lab up; idempotent: a lab that is already up and healthy is returned as it is. */
  static async up(options: UpOptions = {}): Promise<Lab> {
    requireRoot();
    const { id } = buildTopology(options);
    // Under the lab's lock: a second `up` must not take the lab the first is building for a stale one.
    return withLabLock(id, 'up', () => Lab.upLocked(id, options), { waitMs: options.lockWaitMs, log: options.log });
  }

  private static async upLocked(id: string, options: UpOptions): Promise<Lab> {
    // A state file that does not check is a stale lab's, as one whose processes died: removed and built anew.
    const existing = readStateForUp(id, (err) =>
      options.log?.warn({ event: 'labStale', id, err }, 'lab state invalid; removing the lab first'),
    );
    if (existing) {
      const lab = new Lab(existing, options.log, options.lockWaitMs);
      if (await lab.healthy()) {
        // Left as it is: options asked for that it does not have would go unheard.
        refuseUpConflicts(existing, options);
        options.log?.info({ event: 'labAlreadyUp', id }, 'lab already up');
        return lab;
      }
      options.log?.warn({ event: 'labStale', id }, 'removing a stale lab first');
    }
    const down = await downLab(id);
    // Something of the old lab is left (a process in D state, a namespace that will not delete): building over it
    // would overwrite the state downLab kept (losing the recorded pids) or, when there was none (found by name only),
    // wire over a namespace that is still there and fail later on an unrelated 'RTNETLINK answers: File exists'.
    if (down.left.length > 0) {
      throw new LabError(
        'COMMAND_FAILED',
        `lab "${id}": the previous lab is not fully removed (${down.warnings.join('; ')}); run lab down --id ${id} once it can be`,
      );
    }
    const state = await planLabState(options);
    // Written before anything is made, so `down` after a crash from here on knows the lab.
    writeState(state);
    const lab = new Lab(state, options.log, options.lockWaitMs);
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

  watchDaemon(child: WatchedChild, host: string, role: string, logFile: string): void {
    this.#exits.watch(child, host, role, logFile);
  }

  /** A wait's giveUp: the first daemon (of the hosts `match` picks) that exited while the lab still counts on it. */
  private giveUp(match?: (host: string, role: string) => boolean): () => string | undefined {
    return () => this.#exits.exited(this.state, match);
  }

  private save(): void {
    writeState(this.state);
  }

  /**
   * Changes the state's host set and the topology with it. The topology is built from a copy first: a change it
   * refuses (past the node or backend limit) leaves the state as it was, so no later save writes the refused hosts.
   */
  private setHosts(change: Pick<LabState, 'nodeIndexes' | 'backends'>): void {
    const next: LabState = { ...this.state, nodeIndexes: [...change.nodeIndexes], backends: change.backends };
    this.#topology = topologyOf(next);
    this.state = next;
    this.save();
  }

  private async build(readyTimeoutMs: number): Promise<void> {
    const { topology } = this;
    const { runtime, mode } = this.state;
    this.log?.info({ event: 'topologyBuild', id: topology.id, mode, runtime }, 'building the lab');
    await this.runtime.build(this);
    await this.waitReady(readyTimeoutMs);
    // The page shows the fleet the agents serve: static mode has none (dashboard.ts).
    if (mode === 'agent') await startLabDashboard(this);
    this.state.upAt = new Date().toISOString();
    this.save();
    appendEvent(
      this.id,
      { event: 'labUp', detail: `${hostsOfKind(topology, 'node').length} nodes, mode ${mode}` },
      this.log,
    );
  }

  /** Ready: see lab-ready.ts. */
  private waitReady(timeoutMs: number): Promise<void> {
    return waitLabReady(this.#core, timeoutMs);
  }

  /** Stops etcd members hard (default: all); see lab-etcd.ts. */
  stopEtcd(names?: readonly string[]): Promise<void> {
    return this.locked(`stop etcd ${names?.join(',') ?? ''}`.trim(), () =>
      stopEtcd(this.#core, names ?? etcdMemberNames(this.#core)),
    );
  }

  /** Starts etcd members (default: all that were stopped) and waits for them if a quorum runs; see lab-etcd.ts. */
  startEtcd(names?: readonly string[], timeoutMs = DEFAULT_ETCD_START_TIMEOUT_MS): Promise<void> {
    // The default is read under the lock: the killed list as it is then.
    return this.locked(`start etcd ${names?.join(',') ?? ''}`.trim(), () =>
      startEtcd(this.#core, names ?? etcdMemberNames(this.#core).filter((n) => this.killed.includes(n)), timeoutMs),
    );
  }

  /** Adds the next backend, and with `applyFleet` applies the lab fleet with it; returns its name (lab-backends.ts). */
  addBackend(options: AddBackendOptions = {}): Promise<string> {
    return this.locked('add-backend', async () => {
      const name = await addBackend(this.#core);
      if (options.applyFleet && this.mode === 'agent') {
        const output = await applyDefaultFleet(this);
        appendEvent(this.id, { event: 'fleetApplied', detail: `every pool has ${name}` }, this.log);
        options.onFleetApplied?.({ file: labFleetFile(this.id), output });
      }
      return name;
    });
  }

  /** Fails a backend: everything in it dies (lab-backends.ts). */
  failBackend(name: string): Promise<void> {
    return this.locked(`fail-backend ${name}`, () => failBackend(this.#core, name));
  }

  /** Starts a backend's service again (lab-backends.ts). */
  restoreBackend(name: string): Promise<void> {
    return this.locked(`restore-backend ${name}`, () => restoreBackend(this.#core, name));
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

  /** Every recorded process alive and every namespace present (lab-health.ts). */
  healthy(): Promise<boolean> {
    return labHealthy(this.#core);
  }

  /**
   * Adds the next node and makes it the router's neighbor; returns its name (lab-nodes.ts). Aborting `signal` stops
   * the add between its steps and undoes it.
   */
  addNode(readyTimeoutMs = DEFAULT_READY_TIMEOUT_MS, signal?: AbortSignal): Promise<string> {
    return this.locked('add-node', async () => {
      const name = await addNode(this.#core, readyTimeoutMs, signal);
      // Restarted with the new node's agent in its /metrics list (dashboard.ts).
      if (labDashboard(this.state, this.topology)) await restartLabDashboard(this.#core);
      return name;
    });
  }

  /** Hard failure of a node (lab-nodes.ts); an etcd member's name (`etcd2`) kills that member only (stopEtcd). */
  kill(node: string): Promise<void> {
    return this.locked(`kill ${node}`, () =>
      isEtcdMember(this.topology, node) ? stopEtcd(this.#core, [node]) : killNode(this.#core, node),
    );
  }

  /** Brings a node (or an etcd member) back (lab-nodes.ts). */
  restart(node: string, readyTimeoutMs = DEFAULT_READY_TIMEOUT_MS): Promise<void> {
    return this.locked(`restart ${node}`, () =>
      isEtcdMember(this.topology, node)
        ? startEtcd(this.#core, [node], readyTimeoutMs)
        : restartNode(this.#core, node, readyTimeoutMs),
    );
  }

  /** argv that runs `argv` inside `host` (for `lab exec`). */
  execArgv(host: string, argv: readonly string[]): string[] {
    const h = hostOf(this.topology, host);
    return h.namespace ? ['ip', 'netns', 'exec', h.namespace, ...argv] : [...argv];
  }

  status(): Promise<LabStatus> {
    const { id, runtime, mode, killed } = this.state;
    const dashboard = labDashboard(this.state, this.topology);
    return collectStatus({
      id,
      runtime,
      mode,
      killed,
      topology: this.topology,
      vtyDir: routerPaths(id).vtyDir,
      dashboard,
    });
  }

  async down(): Promise<void> {
    await Lab.down(this.id, this.log, { lockWaitMs: this.lockWaitMs });
  }
}

function requireState(id: string): LabState {
  const state = readState(id);
  if (!state) throw new LabError('LAB_NOT_RUNNING', `lab "${id}" is not up (no state in ${labDir(id)})`);
  return state;
}
