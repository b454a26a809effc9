/**
 * What a lab made, on disk, so `lab down` can undo it after a crash and every `lab` command (a new process each time)
 * finds the running lab. One directory per lab id under the state root.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { pidStartTime } from '@l4fleet/process';
import type { Logger } from 'pino';
import { LabError } from '../errors.js';
import type { BackendNetwork, LabDataPlane, LabForwarding } from '../topology/data-path.js';
import { LAB_ID_RULE } from '../topology/lab-id.js';
import type { LabBfd } from '../topology/model.js';
import { checkLabState } from './state-check.js';

/** Override with L4FLEET_LAB_STATE_DIR; /run is a tmpfs, so a reboot (which also drops namespaces) empties it. */
export const DEFAULT_STATE_ROOT = '/run/l4fleet-lab';

export type LabMode = 'agent' | 'static';
export type Runtime = 'netns' | 'docker';

export interface LabState {
  readonly version: 1;
  readonly id: string;
  readonly runtime: Runtime;
  /** `agent`: nodes run the l4fleet agent; `static`: gobgpd announces the VIPs and a stateless nft rule forwards. */
  readonly mode: LabMode;
  readonly controlSlot: number;
  /** etcd cluster members; absent in states written before the lab ran a cluster (then 1). */
  readonly etcdMembers?: number;
  /** BFD timers of the router-node sessions; absent: no BFD (also in states written before the lab had it). */
  readonly bfd?: LabBfd;
  /** The nodes' data plane, where backends sit, the pools' forwarding; absent in older states: nftables, l2, l2. */
  readonly dataplane?: LabDataPlane;
  readonly backendNetwork?: BackendNetwork;
  readonly forwarding?: LabForwarding;
  readonly clients: number;
  backends: number;
  nodeIndexes: number[];
  /**
   * Nodes and etcd members killed with `lab kill` until `lab restart`, backends failed with `lab fail-backend` until
   * `restore-backend`.
   */
  killed: string[];
  /** Host name -> process role -> pid (the control host's etcd members by member name). */
  pids: Record<string, Record<string, number>>;
  /**
   * Host name -> process role -> start time of the pid in `pids` (@l4fleet/process's pidStartTime), so `down` knows
   * its processes also when their namespace is gone (deleted by hand); absent in states written before, and where
   * /proc had none.
   */
  starts?: Record<string, Record<string, string>>;
  readonly createdAt: string;
  upAt?: string;
}

/** Empty is unset: an empty root would put every lab's directory (which `down` removes) in the working directory. */
export function stateRoot(): string {
  const env = process.env.L4FLEET_LAB_STATE_DIR;
  return env === undefined || env === '' ? DEFAULT_STATE_ROOT : env;
}

/**
 * Lab `id`'s directory: always a directory directly in the state root, else OPTION_INVALID. The commands check the id
 * (cli-options.ts labId); this holds for every other caller too, since `down` removes the directory recursively (as
 * root): an id of `..`, `a/b`, `/x` or the empty one must never name the root, its parent or anything else.
 */
export function labDir(id: string): string {
  const root = resolve(stateRoot());
  const dir = resolve(root, id);
  if (dirname(dir) !== root || basename(dir) !== id) {
    throw new LabError(
      'OPTION_INVALID',
      `lab id "${id}" does not name a directory directly in the lab state root ${root}: refused (a lab id is ${LAB_ID_RULE})`,
    );
  }
  return dir;
}

export function hostDir(id: string, host: string): string {
  const dir = join(labDir(id), host);
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** The state of lab `id`, undefined if it has none; throws STATE_INVALID naming what is wrong (state-check.ts). */
export function readState(id: string): LabState | undefined {
  const file = join(labDir(id), 'state.json');
  if (!existsSync(file)) return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new LabError('STATE_INVALID', `lab state file "${file}" is not valid JSON`, { cause: err });
  }
  return checkLabState(raw, id, file);
}

/**
 * For `up`: the state of lab `id`, or undefined when it has none or one that does not check (`onInvalid` is told why).
 * A hand-edited or truncated state is a stale lab's: `up` removes the lab (downLab needs no state) and builds it anew.
 */
export function readStateForUp(id: string, onInvalid: (err: LabError) => void): LabState | undefined {
  try {
    return readState(id);
  } catch (err) {
    if (!(err instanceof LabError && err.code === 'STATE_INVALID')) throw err;
    onInvalid(err);
    return undefined;
  }
}

/** Written to a temp file and renamed, so a crash mid-write never leaves half a state file. */
export function writeState(state: LabState): void {
  const dir = labDir(state.id);
  mkdirSync(dir, { recursive: true });
  const tmp = join(dir, 'state.json.tmp');
  writeFileSync(tmp, `${JSON.stringify(state, null, 2)}\n`);
  renameSync(tmp, join(dir, 'state.json'));
}

/** Removes lab `id`'s directory; labDir refuses an id that names anything but a directory in the state root. */
export function removeState(id: string): void {
  rmSync(labDir(id), { recursive: true, force: true });
}

/** Records `pid` as `host`'s `role`, with its start time (read now: the process was just started). */
export function recordPid(state: LabState, host: string, role: string, pid: number): void {
  state.pids[host] = { ...(state.pids[host] ?? {}), [role]: pid };
  const { [role]: _old, ...others } = state.starts?.[host] ?? {};
  const start = pidStartTime(pid);
  state.starts = { ...(state.starts ?? {}), [host]: start === undefined ? others : { ...others, [role]: start } };
}

/** Appended by lab commands, tailed by `lab watch` for its timeline. */
export interface LabEvent {
  readonly at: string;
  readonly event: string;
  readonly host?: string;
  readonly detail?: string;
}

export function eventsFile(id: string): string {
  return join(labDir(id), 'events.jsonl');
}

/**
 * Appends `event` to lab `id`'s timeline, only while the lab's directory is there: an event written after `lab down`
 * (a command that lost the race, a daemon exit seen late) would otherwise bring back an empty lab directory. Such an
 * event is dropped, told to `log` at debug. No existence check first: the append itself (which creates the file but
 * never the directory) fails ENOENT, so a `down` between check and write cannot slip through.
 */
export function appendEvent(id: string, event: Omit<LabEvent, 'at'>, log?: Pick<Logger, 'debug'>): void {
  try {
    writeFileSync(eventsFile(id), `${JSON.stringify({ at: new Date().toISOString(), ...event })}\n`, { flag: 'a' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    log?.debug({ event: 'labEventDropped', id, dropped: event.event, host: event.host }, 'lab is down; event dropped');
  }
}

export function readEvents(id: string): LabEvent[] {
  const file = eventsFile(id);
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as LabEvent);
}
