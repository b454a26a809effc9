/**
 * Process faults on one lab host, for the fault scenarios (test/lab-faults.int.test.ts): signal a recorded daemon
 * (SIGSTOP a gobgpd, SIGKILL an agent) and start a node's agent again the way a supervisor (systemd `Restart=`)
 * would. Netns runtime only: in Docker a node's daemons share one container and its entrypoint.
 */
import { LabError } from '../errors.js';
import { hostOf } from '../topology/model.js';
import type { LabContext } from './lab-runtime.js';
import { startAgent } from './netns-runtime.js';
import { readState } from './state.js';

function requireNetns(lab: LabContext, what: string): void {
  const state = readState(lab.id);
  if (state?.runtime !== 'netns') {
    throw new LabError('RUNTIME_UNSUPPORTED', `${what}: only the netns runtime (lab "${lab.id}")`);
  }
}

/** The recorded pid of `host`'s daemon `role` (`gobgpd`, `agent`, `etcd2`, ...). */
export function daemonPid(lab: LabContext, host: string, role: string): number {
  const pid = readState(lab.id)?.pids[host]?.[role];
  if (pid === undefined) {
    throw new LabError('HOST_UNKNOWN', `lab "${lab.id}": host "${host}" has no recorded process "${role}"`);
  }
  return pid;
}

/** Sends `signal` to `host`'s daemon `role`; returns its pid. */
export function signalDaemon(lab: LabContext, host: string, role: string, signal: NodeJS.Signals): number {
  requireNetns(lab, `signal ${host} ${role}`);
  const pid = daemonPid(lab, host, role);
  process.kill(pid, signal);
  return pid;
}

/** Starts `node`'s agent again (after it died); gobgpd and the data plane kept running. Returns the new pid. */
export function restartAgent(lab: LabContext, node: string): number {
  requireNetns(lab, `restart the agent of ${node}`);
  if (hostOf(lab.topology, node).kind !== 'node') {
    throw new LabError('HOST_UNKNOWN', `host "${node}" is not a node of lab "${lab.id}"`);
  }
  startAgent(lab, node);
  return daemonPid(lab, node, 'agent');
}
