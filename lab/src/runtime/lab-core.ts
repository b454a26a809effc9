/**
 * What the lab's operation modules (lab-nodes.ts, lab-backends.ts, lab-etcd.ts) may use of the Lab (lab.ts): its
 * context (as runtimes see it), its state and the runtime. Only Lab makes one; nothing outside the lab imports it.
 */
import { join } from 'node:path';
import { type FrrPaths, frrPaths } from '@l4fleet/daemons';
import { LabError } from '../errors.js';
import { hostOf } from '../topology/model.js';
import type { LabContext, LabRuntime } from './lab-runtime.js';
import { type LabState, labDir } from './state.js';

export interface LabCore extends LabContext {
  /** The state as last saved or re-read (never cached by an operation: `refresh` replaces it). */
  readonly state: LabState;
  readonly runtime: LabRuntime;
  /** Writes the state to disk. */
  save(): void;
  /** Changes the state's host set, recomputes the topology and saves. */
  setHosts(change: Pick<LabState, 'nodeIndexes' | 'backends'>): void;
  /** A wait's giveUp: a daemon of the hosts `match` picks (default all) that exited, named (daemon-exits.ts). */
  giveUp(match?: (host: string, role: string) => boolean): () => string | undefined;
}

/** The router's FRR files (bgpd.conf, vty sockets) in the lab's state dir. */
export function routerPaths(id: string): FrrPaths {
  return frrPaths(join(labDir(id), 'router'));
}

/** Adds `host` to the killed list (once) and saves. */
export function markKilled(core: LabCore, host: string): void {
  if (!core.state.killed.includes(host)) core.state.killed = [...core.state.killed, host];
  core.save();
}

/** Removes `hosts` from the killed list and saves. */
export function markAlive(core: LabCore, hosts: readonly string[]): void {
  core.state.killed = core.state.killed.filter((n) => !hosts.includes(n));
  core.save();
}

export function requireKind(core: LabCore, host: string, kind: 'node' | 'backend'): void {
  if (hostOf(core.topology, host).kind !== kind) {
    throw new LabError('HOST_UNKNOWN', `host "${host}" is not a ${kind} of lab "${core.id}"`);
  }
}
