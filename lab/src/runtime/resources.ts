/**
 * What exists of a lab, found by name prefix rather than from its state file, and `down`, which removes all of it:
 * a crashed `up`, a broken state file or a reboot's leftovers are cleaned the same way.
 */
import { existsSync, readdirSync } from 'node:fs';
import { killAll, namespacePids, pidStartTime, run, sleep } from '@l4fleet/process';
import { LabError } from '../errors.js';
import { isLabId } from '../topology/lab-id.js';
import { hostIfaceOf, LAB_PREFIX, labIdOfNamespace } from '../topology/model.js';
import { unmountBpffsUnder } from './bpffs.js';
import { LAB_LABEL, labContainerIds, removeLabContainers } from './docker.js';
import { type LabState, labDir, readState, removeState, stateRoot } from './state.js';

export function requireRoot(): void {
  if (process.getuid?.() !== 0) throw new LabError('NOT_ROOT', 'the lab needs root (namespaces, nftables, FRR)');
}

export interface LabResources {
  readonly namespaces: string[];
  readonly hostInterfaces: string[];
}

export interface LabDown extends LabResources {
  /** What `down` could not remove and why (the CLI prints these); empty when all went. */
  readonly warnings: string[];
  /**
   * What of the lab is still there: pids that outlived SIGKILL and namespaces or interfaces whose delete failed, one
   * line each (also in `warnings`). `up` refuses to build over them, whether or not a state dir was kept for them.
   */
  readonly left: string[];
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

/**
 * Removes every process, namespace, interface and state file of lab `id`; works without (or with a broken) state.
 * What will not go (a process that outlives SIGKILL, a namespace or interface whose delete fails) is in `warnings`,
 * and then the state file stays, so a later `down` retries.
 */
export async function downLab(id: string): Promise<LabDown> {
  requireRoot();
  const found = await listLabResources(id);
  const stateDirFound = existsSync(labDir(id));
  let state: LabState | undefined;
  try {
    state = readState(id);
  } catch {
    state = undefined; // a broken state file must not keep `down` from cleaning up what the prefix finds
  }
  const pids = new Set<number>();
  for (const [host, roles] of Object.entries(state?.pids ?? {})) {
    for (const [role, pid] of Object.entries(roles)) {
      if (await pidOwnedByLab(pid, id, state?.starts?.[host]?.[role])) pids.add(pid);
    }
  }
  for (const ns of found.namespaces) for (const pid of await namespacePids(ns)) pids.add(pid);
  const left: string[] = [];
  const survivors = await killAll([...pids]);
  if (survivors.length > 0) {
    const list = survivors.join(', ');
    left.push(
      `lab "${id}": ${survivors.length === 1 ? 'pid' : 'pids'} ${list} still running after SIGKILL (in D state, ` +
        `waiting on the kernel, or another user's): ps -o pid,stat,wchan:32,args -p ${survivors.join(',')}`,
    );
  }
  left.push(...(await deleteAll(id, found)));
  const warnings = [...left];
  const containers = await removeLabContainers(id);
  // The state goes below, but the containers stay: say so, so the user starts the engine and runs `down --all`
  // (which finds them by their label). Also when the state cannot tell (broken, or gone with the lab's namespaces
  // left): the lab may be a Docker one.
  if (containers === undefined) {
    const start = `start the engine (eval "$(bash scripts/docker-engine.sh start)", or set DOCKER_HOST) and run lab down --all`;
    const labelled = `label ${LAB_LABEL}=${id}`;
    if (state?.runtime === 'docker') {
      warnings.push(
        `lab "${id}" runs in Docker but no Docker engine answers: its containers (${labelled}) were not removed; ${start}`,
      );
    } else if (state === undefined && (stateDirFound || found.namespaces.length > 0)) {
      warnings.push(
        `lab "${id}" may run in Docker (its state cannot be read) but no Docker engine answers: its containers (${labelled}), if any, were not removed; ${start}`,
      );
    }
  }
  // The bpf nodes' and backends' pins (bpffs.ts) go with their file systems; before the state dir is removed.
  await unmountBpffsUnder(labDir(id));
  // Something left (a process, a namespace, the host interface): the state stays, so the next `down` (and `up`,
  // which runs one first) finds the recorded pids again and retries; without it only the name prefix would.
  if (left.length > 0) {
    if (stateDirFound) warnings.push(`lab "${id}": its state (${labDir(id)}) is kept; lab down retries what is left`);
  } else {
    removeState(id);
  }
  // The kernel frees a namespace once its last process is gone; give it a moment so a following up starts clean.
  await sleep(50);
  return { ...found, warnings, left };
}

/**
 * Deletes the lab's namespaces and host interface; returns a warning for each delete that failed and left its object
 * behind (a host interface that went with its peer's namespace meanwhile failed to delete but is gone: no warning).
 */
async function deleteAll(id: string, found: LabResources): Promise<string[]> {
  const failed = new Map<string, string>();
  for (const ns of found.namespaces) {
    const r = await run(['ip', 'netns', 'del', ns], { allowFailure: true });
    if (r.code !== 0) failed.set(`ns:${ns}`, `ip netns del ${ns}: ${r.stderr.trim() || `exit ${r.code}`}`);
  }
  for (const iface of found.hostInterfaces) {
    const r = await run(['ip', 'link', 'del', iface], { allowFailure: true });
    if (r.code !== 0) failed.set(`link:${iface}`, `ip link del ${iface}: ${r.stderr.trim() || `exit ${r.code}`}`);
  }
  if (failed.size === 0) return [];
  const left = await listLabResources(id);
  const stillThere = new Set([
    ...left.namespaces.map((n) => `ns:${n}`),
    ...left.hostInterfaces.map((i) => `link:${i}`),
  ]);
  return [...failed].filter(([key]) => stillThere.has(key)).map(([, why]) => `lab "${id}": ${why}`);
}

/**
 * A recorded pid may have been reused (after a reboot, or once the process died): it is the lab's while it runs with
 * the start time recorded with it, or (states without one) in one of the lab's namespaces. The start time matters when
 * a namespace was deleted by hand: `ip netns identify` then names none, yet the daemons run on (bpf map fds and all).
 */
async function pidOwnedByLab(pid: number, id: string, start: string | undefined): Promise<boolean> {
  if (start !== undefined && pidStartTime(pid) === start) return true;
  const r = await run(['ip', 'netns', 'identify', String(pid)], { allowFailure: true, timeoutMs: 5_000 });
  return r.stdout.trim().startsWith(`${LAB_PREFIX}${id}-`);
}

export interface LabIds {
  /** Labs of this machine: a state dir, a container labelled l4fleet.lab, or namespaces named like a lab's and one of those. */
  readonly ids: string[];
  /**
   * Ids whose namespaces only have a lab's name shape (`l4f-<id>-...`), with no state dir and no lab container:
   * another tool's (a containerlab deployment's netns links are named `<prefix>-<lab>-<node>`), left alone.
   */
  readonly unowned: string[];
}

/**
 * Every lab of this machine, for `down --all`: by state dir and by label (no name of another tool's has those), and by
 * namespace name only where the id also has one of them; a crash leaves the state dir (written before anything is made).
 */
export async function listLabIds(): Promise<LabIds> {
  const owned = new Set<string>();
  const root = stateRoot();
  if (existsSync(root)) {
    for (const entry of readdirSync(root, { withFileTypes: true })) {
      if (entry.isDirectory() && isLabId(entry.name)) owned.add(entry.name);
    }
  }
  for (const id of (await labContainerIds()) ?? []) owned.add(id);
  const nsList = await run(['ip', 'netns', 'list'], { allowFailure: true });
  const unowned = new Set<string>();
  for (const line of nsList.stdout.split('\n')) {
    const id = labIdOfNamespace(line);
    if (id !== undefined && !owned.has(id)) unowned.add(id);
  }
  return { ids: [...owned].sort(), unowned: [...unowned].sort() };
}
