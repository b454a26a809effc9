/**
 * A lab's state file checked as it is read back: every command acts on what it says (the pids `kill etcd2` sends
 * SIGKILL to, the id whose namespaces it touches), so a hand-edited or truncated file is refused, naming the field and
 * its value, before anything is done. `up` and `down` treat such a file as a stale lab's and remove the lab.
 */
import { LabError } from '../errors.js';
import {
  BACKEND_NETWORKS,
  type BackendNetwork,
  LAB_DATA_PLANES,
  LAB_FORWARDINGS,
  type LabDataPlane,
  type LabForwarding,
  NFTABLES_DATA_PATH,
} from '../topology/data-path.js';
import { buildTopology, type LabBfd, type Topology } from '../topology/model.js';
import type { LabState } from './state.js';

const RUNTIMES = ['netns', 'docker'] as const;
const MODES = ['agent', 'static'] as const;

/** The topology a state describes: the hosts `up` made plus those added since. */
export function topologyOf(state: LabState): Topology {
  const { id, nodeIndexes, backends, clients, controlSlot, bfd, dataplane, backendNetwork, forwarding } = state;
  const etcdMembers = state.etcdMembers ?? 1;
  return buildTopology({
    ...{ id, nodeIndexes, backends, clients, controlSlot, etcdMembers, bfd },
    // A state written before the lab had data paths ran nftables with l2 backends, whatever today's default is.
    ...(dataplane === undefined ? NFTABLES_DATA_PATH : { dataplane, backendNetwork, forwarding }),
  });
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * The state of lab `id` (its directory's name) from the parsed contents of `file`; throws STATE_INVALID naming the
 * first field that is wrong and its value. Ranges (node indexes, counts, BFD timers) are the topology's own: the
 * state must describe a lab `buildTopology` can make.
 */
export function checkLabState(raw: unknown, id: string, file: string): LabState {
  const invalid = (what: string, cause?: unknown): never => {
    throw new LabError('STATE_INVALID', `lab state file "${file}": ${what}`, { cause });
  };
  const show = (v: unknown) => (v === undefined ? 'missing' : JSON.stringify(v));
  if (!isRecord(raw)) return invalid(`${show(raw)} is not an object`);
  const field = (name: string, ok: (v: unknown) => boolean, expected: string): unknown => {
    const v = raw[name];
    if (!ok(v)) invalid(`${name} ${show(v)} is not ${expected}`);
    return v;
  };
  const optional = (ok: (v: unknown) => boolean) => (v: unknown) => v === undefined || ok(v);
  const oneOf = (values: readonly string[]) => (v: unknown) => typeof v === 'string' && values.includes(v);
  const int = (v: unknown) => Number.isSafeInteger(v);
  const str = (v: unknown) => typeof v === 'string';

  field('version', (v) => v === 1, '1');
  field('id', (v) => v === id, `"${id}", the name of its directory`);
  const etcdMembers = field('etcdMembers', optional(int), 'an integer') as number | undefined;
  const bfd = field(
    'bfd',
    optional((v) => isRecord(v) && int(v.intervalMs) && int(v.multiplier)),
    'an object of integers intervalMs and multiplier',
  ) as LabBfd | undefined;
  const dataplane = field('dataplane', optional(oneOf(LAB_DATA_PLANES)), `one of ${LAB_DATA_PLANES.join(', ')}`) as
    | LabDataPlane
    | undefined;
  const backendNetwork = field(
    'backendNetwork',
    optional(oneOf(BACKEND_NETWORKS)),
    `one of ${BACKEND_NETWORKS.join(', ')}`,
  ) as BackendNetwork | undefined;
  const forwarding = field('forwarding', optional(oneOf(LAB_FORWARDINGS)), `one of ${LAB_FORWARDINGS.join(', ')}`) as
    | LabForwarding
    | undefined;
  const upAt = field('upAt', optional(str), 'a string') as string | undefined;
  const state: LabState = {
    version: 1,
    id,
    runtime: field('runtime', oneOf(RUNTIMES), `one of ${RUNTIMES.join(', ')}`) as LabState['runtime'],
    mode: field('mode', oneOf(MODES), `one of ${MODES.join(', ')}`) as LabState['mode'],
    controlSlot: field('controlSlot', int, 'an integer') as number,
    ...(etcdMembers !== undefined ? { etcdMembers } : {}),
    ...(bfd !== undefined ? { bfd: { intervalMs: bfd.intervalMs, multiplier: bfd.multiplier } } : {}),
    ...(dataplane !== undefined ? { dataplane } : {}),
    ...(backendNetwork !== undefined ? { backendNetwork } : {}),
    ...(forwarding !== undefined ? { forwarding } : {}),
    clients: field('clients', int, 'an integer') as number,
    backends: field('backends', int, 'an integer') as number,
    nodeIndexes: [...(field('nodeIndexes', (v) => Array.isArray(v) && v.every(int), 'a list of integers') as number[])],
    killed: [...(field('killed', (v) => Array.isArray(v) && v.every(str), 'a list of names') as string[])],
    pids: {},
    createdAt: field('createdAt', str, 'a string') as string,
    ...(upAt !== undefined ? { upAt } : {}),
  };

  let topology: Topology;
  try {
    topology = topologyOf(state);
  } catch (err) {
    return invalid(err instanceof Error ? err.message : String(err), err);
  }
  // Every host with recorded processes is one of the lab's namespaces, every pid a process id: `kill`, `down` and
  // `up`'s health check act on them.
  const pids = field('pids', isRecord, 'an object of host -> role -> pid') as Record<string, unknown>;
  for (const [host, roles] of Object.entries(pids)) {
    if (!topology.hosts.some((h) => h.name === host && h.namespace !== undefined)) {
      invalid(`pids.${host}: "${host}" is not a host of lab "${id}"`);
    }
    if (!isRecord(roles)) return invalid(`pids.${host} ${show(roles)} is not an object of role -> pid`);
    for (const [role, pid] of Object.entries(roles)) {
      if (!int(pid) || (pid as number) < 1) invalid(`pids.${host}.${role} ${show(pid)} is not a positive integer`);
    }
    state.pids[host] = { ...(roles as Record<string, number>) };
  }
  // Start times of recorded pids: `down` kills a pid whose namespace is gone only while its start time matches.
  const starts = field('starts', optional(isRecord), 'an object of host -> role -> start time') as
    | Record<string, unknown>
    | undefined;
  if (starts !== undefined) state.starts = {};
  for (const [host, roles] of Object.entries(starts ?? {})) {
    if (!isRecord(roles)) return invalid(`starts.${host} ${show(roles)} is not an object of role -> start time`);
    for (const [role, start] of Object.entries(roles)) {
      if (typeof start !== 'string' || !/^\d+$/.test(start)) {
        invalid(`starts.${host}.${role} ${show(start)} is not a start time (clock ticks, digits)`);
      }
      if (state.pids[host]?.[role] === undefined) invalid(`starts.${host}.${role}: no pid is recorded for it`);
    }
    if (state.starts) state.starts[host] = { ...(roles as Record<string, string>) };
  }
  const names = [...topology.hosts.map((h) => h.name), ...topology.control.etcdMembers.map((m) => m.name)];
  for (const name of state.killed) {
    if (!names.includes(name)) invalid(`killed: "${name}" is not a host or etcd member of lab "${id}"`);
  }
  return state;
}
