/**
 * What differs between the lab's runtimes, behind one interface: the lab model (lab.ts) holds the topology, the
 * state and every operation, and asks its runtime only to make hosts. `netns` (netns-runtime.ts) runs the daemons
 * in network namespaces on this machine; `docker` (docker-runtime.ts) runs each host as a container whose network
 * namespace gets the same name and the same wiring.
 */
import type { Logger } from 'pino';
import { LabError } from '../errors.js';
import { type EtcdMember, hostOf, type Topology } from '../topology/model.js';
import type { WatchedChild } from './daemon-exits.js';
import type { LabMode, Runtime } from './state.js';
import type { BpfMissing } from './up-data-path.js';

/** The network namespace of `host` (named like the netns runtime's in both runtimes). */
export function hostNamespace(topology: Topology, host: string): string {
  const namespace = hostOf(topology, host).namespace;
  if (!namespace) throw new LabError('HOST_UNKNOWN', `host "${host}" has no namespace`);
  return namespace;
}

/** What a runtime may use of the lab it works for. */
export interface LabContext {
  readonly id: string;
  readonly topology: Topology;
  readonly mode: LabMode;
  readonly log: Logger | undefined;
  /** The network namespace of `host`. */
  ns(host: string): string;
  /** The directory of `host`'s files (configs, logs) in the lab's state dir. */
  hostDir(host: string): string;
  /** Records `pid` as `host`'s process `role` and saves the state (so `down` finds it after a crash). */
  recordPid(host: string, role: string, pid: number): void;
  /** Keeps the exit of a daemon this process started, so the lab's waits give up naming it (daemon-exits.ts). */
  watchDaemon(child: WatchedChild, host: string, role: string, logFile: string): void;
}

export interface LabRuntime {
  readonly name: Runtime;
  /** The node mode to run for `wanted`; refuses, before anything is made, what this runtime cannot do. */
  resolveMode(wanted: LabMode | 'auto'): Promise<LabMode>;
  /**
   * What this runtime lacks of the bpf data plane beyond this machine's build (Docker: the agent image's loader,
   * object and libbpf); undefined when nothing.
   */
  bpfMissing(): Promise<BpfMissing | undefined>;
  /** Makes every host of the topology: wiring, then daemons. */
  build(lab: LabContext): Promise<void>;
  /** Makes one host anew, links and daemons (add-node, add-backend, restart). */
  startHost(lab: LabContext, host: string): Promise<void>;
  /** Removes one host made by startHost, processes, links and all (an add-node that failed). */
  removeHost(lab: LabContext, host: string): Promise<void>;
  /** Starts a failed backend's service again; its links stay. */
  restoreService(lab: LabContext, host: string): Promise<void>;
  /** Stops one etcd member hard (SIGKILL), as a crashed or partitioned member. */
  stopEtcd(lab: LabContext, member: EtcdMember, pid: number | undefined): Promise<void>;
  /** Starts one etcd member again (on its data); the caller waits until it answers. */
  startEtcd(lab: LabContext, member: EtcdMember): Promise<void>;
}
