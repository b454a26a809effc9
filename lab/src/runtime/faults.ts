/**
 * Process faults on one lab host, for the fault scenarios (test/lab-faults.int.test.ts): signal a recorded daemon
 * (SIGSTOP a gobgpd, SIGKILL an agent) and start a node's agent again the way a supervisor (systemd `Restart=`)
 * would. Netns runtime only: in Docker a node's daemons share one container and its entrypoint.
 */
import { LabError } from '../errors.js';
import { hostOf } from '../topology/model.js';
import type { LabContext } from './lab-runtime.js';
import { withLabLock } from './lock.js';
import { startAgent } from './netns-runtime.js';
import { labDir, readState } from './state.js';

function requireNetns(lab: LabContext, what: string): void {
  const state = readState(lab.id);
  if (!state) {
    throw new LabError('LAB_NOT_RUNNING', `${what}: lab "${lab.id}" is not up (no state in ${labDir(lab.id)})`);
  }
  if (state.runtime !== 'netns') {
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

/** What restartAgent needs of the lab (a Lab is one): its context, and its state read again from disk. */
export interface RestartableLab extends LabContext {
  refresh(): void;
}

export interface RestartAgentOptions {
  /** How long to wait while another lab command holds the lab's lock (lock.ts); default 180 s. */
  readonly lockWaitMs?: number | undefined;
}

/**
 * Starts `node`'s agent again (after it died); gobgpd and the data plane kept running. Returns the new pid. It records
 * the pid by saving the lab's whole state, so it holds the lab's lock and reads the state again first: from the copy
 * read when the lab was opened, a `kill` or `add-node` another command made since would be written away.
 */
export function restartAgent(lab: RestartableLab, node: string, options: RestartAgentOptions = {}): Promise<number> {
  const what = `restart the agent of ${node}`;
  return withLabLock(
    lab.id,
    `restart-agent ${node}`,
    async () => {
      requireNetns(lab, what);
      lab.refresh();
      if (hostOf(lab.topology, node).kind !== 'node') {
        throw new LabError('HOST_UNKNOWN', `host "${node}" is not a node of lab "${lab.id}"`);
      }
      startAgent(lab, node);
      return daemonPid(lab, node, 'agent');
    },
    { waitMs: options.lockWaitMs, log: lab.log },
  );
}
