/** The lab's etcd members: stop (crash or partition) and start again (0009-faults.md). */
import { etcdMemberOf } from '../topology/model.js';
import { type LabCore, markAlive } from './lab-core.js';
import { waitEtcd } from './readiness.js';
import { appendEvent } from './state.js';

export const DEFAULT_ETCD_START_TIMEOUT_MS = 30_000;

export function etcdMemberNames(core: LabCore): string[] {
  return core.topology.control.etcdMembers.map((m) => m.name);
}

/**
 * Stops etcd members hard (SIGKILL), as crashed or partitioned members; `startEtcd` brings them back.
 * With a majority gone the cluster has no quorum: nothing is read or written until it is back.
 */
export async function stopEtcd(core: LabCore, names: readonly string[]): Promise<void> {
  const members = names.map((n) => etcdMemberOf(core.topology, n));
  for (const m of members) await core.runtime.stopEtcd(core, m, core.state.pids.control?.[m.name]);
  core.state.killed = [...new Set([...core.state.killed, ...names])];
  core.save();
  for (const m of members) appendEvent(core.id, { event: 'etcdStopped', host: m.name });
}

/**
 * Starts etcd members (a running one is restarted) and, if a quorum then runs, waits until they answer. A member
 * started while the majority is still down waits for it, serving nothing.
 */
export async function startEtcd(core: LabCore, names: readonly string[], timeoutMs: number): Promise<void> {
  const members = names.map((n) => etcdMemberOf(core.topology, n));
  for (const m of members) {
    const pid = core.state.pids.control?.[m.name];
    if (!core.state.killed.includes(m.name)) await core.runtime.stopEtcd(core, m, pid);
    await core.runtime.startEtcd(core, m);
  }
  markAlive(core, names);
  const all = core.topology.control.etcdMembers;
  const live = all.filter((m) => !core.state.killed.includes(m.name));
  const started = core.giveUp((host, role) => host === 'control' && names.includes(role));
  if (live.length > all.length / 2) await waitEtcd(core.topology, timeoutMs, members, started);
  for (const m of members) appendEvent(core.id, { event: 'etcdStarted', host: m.name });
}
