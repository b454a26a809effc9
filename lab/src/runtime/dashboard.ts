/**
 * The lab's dashboard (`l4fleet dashboard`, packages/dashboard): started by `lab up`, restarted by `lab add-node`
 * (its list of agents' /metrics grows), stopped by `lab down` (it runs in a lab namespace, so `down` kills it with
 * the rest).
 *
 * Where it runs: in the control namespace, beside etcd and NATS, so everything it reads (etcd, NATS, the agents'
 * /metrics on the nodes' control addresses) it reads inside the lab, never from the host namespace. It listens on
 * the control address: the one lab address the host reaches, through the control link, exactly as the CLI on the
 * host reaches etcd (`l4fleet --etcd http://198.19.<slot>.2:2379 ...`). So the browser on the host opens
 * http://198.19.<slot>.2:9470/; nothing else than this machine has a route to it. Reads are open; writes need the
 * token in <labdir>/dashboard.token (random, mode 0600, kept across restarts).
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { killAll, namespacePids, startDaemon, waitFor } from '@l4fleet/process';
import { AGENT_METRICS_PORT, attachmentOf, hostsOfKind, type Topology } from '../topology/model.js';
import { cliBin } from './agent.js';
import type { LabCore } from './lab-core.js';
import type { LabContext } from './lab-runtime.js';
import { type LabState, labDir } from './state.js';

/** The dashboard's port on the control address (the CLI's default port). */
export const LAB_DASHBOARD_PORT = 9470;
/** 24 random bytes: 32 base64url characters, twice the dashboard's minimum token length. */
export const DASHBOARD_TOKEN_BYTES = 24;
/** Time for the dashboard to answer after it starts (it reads etcd before it listens). */
export const DASHBOARD_READY_TIMEOUT_MS = 20_000;
const ROLE = 'dashboard';
const HOST = 'control';

/** What `lab status` says about the dashboard. */
export interface LabDashboard {
  readonly url: string;
  /** The write token's file (mode 0600). */
  readonly tokenFile: string;
}

export function dashboardTokenFile(id: string): string {
  return join(labDir(id), 'dashboard.token');
}

export function dashboardUrl(topology: Topology): string {
  return `http://${topology.control.address}:${LAB_DASHBOARD_PORT}/`;
}

/** argv of the dashboard: every etcd member, the lab's NATS, every node's agent /metrics on its control address. */
export function dashboardArgv(topology: Topology, tokenFile: string): string[] {
  const metrics = hostsOfKind(topology, 'node').map(
    (n) => `${n.name}=http://${attachmentOf(topology, 'control', n.name).ipv4}:${AGENT_METRICS_PORT}`,
  );
  return [
    process.execPath,
    cliBin(),
    '--etcd',
    topology.control.etcdEndpoints.join(','),
    'dashboard',
    '--listen',
    `${topology.control.address}:${LAB_DASHBOARD_PORT}`,
    '--nats',
    topology.control.natsUrl,
    '--agent-metrics',
    metrics.join(','),
    '--token-file',
    tokenFile,
  ];
}

/** The token file, made once per lab (a restart keeps the token a browser tab holds); always mode 0600. */
function ensureToken(id: string): string {
  const file = dashboardTokenFile(id);
  if (!existsSync(file) || readFileSync(file, 'utf8').trim().length < 16) {
    writeFileSync(file, `${randomBytes(DASHBOARD_TOKEN_BYTES).toString('base64url')}\n`, { mode: 0o600 });
  }
  chmodSync(file, 0o600); // writeFileSync's mode applies only to a file it creates
  return file;
}

/** Starts the dashboard in the control namespace and waits until the host's browser would get the page. */
export async function startLabDashboard(lab: LabContext): Promise<LabDashboard> {
  const tokenFile = ensureToken(lab.id);
  const logFile = join(lab.hostDir(HOST), `${ROLE}.log`);
  const child = startDaemon(dashboardArgv(lab.topology, tokenFile), { namespace: lab.ns(HOST), logFile });
  lab.recordPid(HOST, ROLE, child.pid);
  const url = dashboardUrl(lab.topology);
  let exited: number | null = null;
  child.once('exit', (code) => {
    exited = code ?? -1;
  });
  await waitFor(
    `dashboard at ${url}`,
    async () =>
      (await fetch(url, { signal: AbortSignal.timeout(2_000) }).catch(() => undefined))?.ok ? true : undefined,
    DASHBOARD_READY_TIMEOUT_MS,
    250,
    () => (exited === null ? undefined : `exited with ${exited}; see ${logFile}`),
  );
  lab.log?.info({ event: 'dashboardUp', url, tokenFile }, 'dashboard up');
  return { url, tokenFile };
}

/** Stops the recorded dashboard (only if that pid still runs in the control namespace) and starts it anew. */
export async function restartLabDashboard(core: LabCore): Promise<LabDashboard> {
  const pid = core.state.pids[HOST]?.[ROLE];
  if (pid !== undefined && (await namespacePids(core.ns(HOST))).includes(pid)) await killAll([pid]);
  return startLabDashboard(core);
}

/** The dashboard of a lab whose state records one; null when the lab runs none (static mode, CLI not built). */
export function labDashboard(state: LabState, topology: Topology): LabDashboard | null {
  if (state.pids[HOST]?.[ROLE] === undefined) return null;
  return { url: dashboardUrl(topology), tokenFile: dashboardTokenFile(state.id) };
}
