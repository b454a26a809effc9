/**
 * The netns runtime: every host a network namespace on this machine, wired by one shell script from the model
 * (netns-plan.ts), its daemons started detached through `ip netns exec` (which execs: the recorded pid is the
 * daemon's own, so `kill` and `down` never depend on pid files).
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { frrDaemonArgv } from '@l4fleet/daemons';
import { killAll, namespacePids, run, runScript, startDaemon, waitFor } from '@l4fleet/process';
import { attachmentOf, type EtcdMember, hostOf, hostsOfKind } from '../topology/model.js';
import { agentArgv, agentAvailable } from './agent.js';
import { setupBackend, setupBackends } from './backend-setup.js';
import { prepareNodeBfdd } from './bfd.js';
import { etcdArgv, natsArgv } from './control.js';
import { backendListen } from './docker.js';
import { prepareFrr } from './frr.js';
import { announce, announced, gobgpdArgv, gobgpdStaticConfig } from './gobgp.js';
import type { LabContext, LabRuntime } from './lab-runtime.js';
import { hostScript, topologyScript } from './netns-plan.js';
import { STATIC_TABLE, staticForwarderRuleset } from './nft.js';
import { observe, prepareDataPlane, writeAgentConfig } from './node-host.js';
import { scriptArgv } from './scripts.js';
import type { LabMode } from './state.js';

const ZEBRA_SOCKET_TIMEOUT_MS = 10_000;
const GOBGPD_API_TIMEOUT_MS = 10_000;

/** Starts `host`'s daemon `role`; its pid is recorded, its exit kept (a wait for the lab then names it). */
function daemon(lab: LabContext, host: string, role: string, argv: readonly string[]): void {
  const logFile = join(lab.hostDir(host), `${role}.log`);
  const p = startDaemon(argv, { namespace: lab.ns(host), logFile });
  lab.recordPid(host, role, p.pid);
  lab.watchDaemon(p, host, role, logFile);
}

/** The member's pid is recorded under its name (`lab kill etcd2` finds it). */
function startEtcdDaemon(lab: LabContext, member: EtcdMember): void {
  daemon(lab, 'control', member.name, etcdArgv(lab.topology, lab.hostDir('control'), member));
}

async function startRouter(lab: LabContext): Promise<void> {
  const paths = prepareFrr(lab.topology, lab.hostDir('router'));
  daemon(lab, 'router', 'zebra', frrDaemonArgv('zebra', paths));
  await waitFor(
    'zebra socket',
    async () => (existsSync(paths.zservSocket) ? true : undefined),
    ZEBRA_SOCKET_TIMEOUT_MS,
    50,
  );
  daemon(lab, 'router', 'bgpd', frrDaemonArgv('bgpd', paths));
  if (lab.topology.bgp.bfd) daemon(lab, 'router', 'bfdd', frrDaemonArgv('bfdd', paths));
}

/** The node's standalone bfdd (bfd.ts), when the lab runs BFD; before gobgpd, so BFD is up when BGP is. */
function startNodeBfdd(lab: LabContext, name: string): void {
  const paths = prepareNodeBfdd(lab.topology, name, lab.hostDir(name));
  if (paths) daemon(lab, name, 'bfdd', frrDaemonArgv('bfdd', paths));
}

function startBackend(lab: LabContext, name: string): void {
  const listen = backendListen(lab.topology, name);
  daemon(lab, name, 'identity', [
    ...scriptArgv('identity/main'),
    '--name',
    name,
    ...listen.flatMap((l) => ['--listen', l]),
  ]);
}

/** The node's agent on its agent.yaml (written anew); `faults.ts` restarts it after a crash with this. */
export function startAgent(lab: LabContext, name: string): void {
  daemon(lab, name, 'agent', agentArgv(writeAgentConfig(lab, name)));
}

/** gobgpd sidecar, then the agent (agent mode) or static announcements + forwarder (static mode). */
async function startNode(lab: LabContext, name: string): Promise<void> {
  const { topology } = lab;
  const namespace = lab.ns(name);
  const fabric = attachmentOf(topology, 'fabric', name);
  await observe(lab, name);
  startNodeBfdd(lab, name);
  if (lab.mode === 'agent') {
    await prepareDataPlane(lab, name);
    daemon(lab, name, 'gobgpd', gobgpdArgv());
    startAgent(lab, name);
    return;
  }
  const conf = join(lab.hostDir(name), 'gobgpd.toml');
  writeFileSync(conf, gobgpdStaticConfig(topology, name));
  daemon(lab, name, 'gobgpd', gobgpdArgv(conf));
  const apiUp = async () => {
    await announced(namespace);
    return true;
  };
  await waitFor(`gobgpd API on ${name}`, apiUp, GOBGPD_API_TIMEOUT_MS, 100);
  await run(['nft', 'delete', 'table', 'netdev', STATIC_TABLE], { namespace, allowFailure: true });
  await run(['nft', '-f', '-'], { namespace, input: staticForwarderRuleset(topology, fabric.iface) });
  for (const vip of topology.vips) {
    const v6 = vip.address.includes(':');
    await announce(namespace, `${vip.address}/${v6 ? 128 : 32}`, v6 ? (fabric.ipv6 ?? '') : fabric.ipv4);
  }
}

async function startProcesses(lab: LabContext, host: string): Promise<void> {
  const { kind } = hostOf(lab.topology, host);
  if (kind === 'node') await startNode(lab, host);
  else if (kind === 'backend') startBackend(lab, host);
}

export const netnsRuntime: LabRuntime = {
  name: 'netns',
  async resolveMode(wanted: LabMode | 'auto'): Promise<LabMode> {
    if (wanted !== 'auto') return wanted;
    return (await agentAvailable()) ? 'agent' : 'static';
  },
  // The hosts run this machine's build: bpfAvailable() (lab.ts) says it all.
  bpfMissing: async () => undefined,
  async build(lab) {
    await runScript(topologyScript(lab.topology));
    for (const m of lab.topology.control.etcdMembers) startEtcdDaemon(lab, m);
    daemon(lab, 'control', 'nats', natsArgv(lab.topology, lab.hostDir('control')));
    await startRouter(lab);
    // Setup first: it puts the VIPs on lo, which the identity server binds for UDP.
    await Promise.all(hostsOfKind(lab.topology, 'backend').map((b) => setupBackend(lab, b.name)));
    for (const b of hostsOfKind(lab.topology, 'backend')) startBackend(lab, b.name);
    for (const n of hostsOfKind(lab.topology, 'node')) await startNode(lab, n.name);
  },
  async startHost(lab, host) {
    await runScript(hostScript(lab.topology, host));
    // Every backend: the others take the new one as a peer (second chance), the new one takes them.
    if (hostOf(lab.topology, host).kind === 'backend') await setupBackends(lab);
    await startProcesses(lab, host);
  },
  async removeHost(lab, host) {
    // Its veths go with the namespace, the router's and the hub's ends too.
    await killAll(await namespacePids(lab.ns(host)));
    await run(['ip', 'netns', 'del', lab.ns(host)], { allowFailure: true });
  },
  restoreService: startProcesses,
  async stopEtcd(lab, _member, pid) {
    // The recorded pid only while it runs in the control namespace (as downLab checks): after the member died, or
    // in an edited state, it may be any process of this machine.
    if (pid !== undefined && (await namespacePids(lab.ns('control'))).includes(pid)) await killAll([pid]);
  },
  async startEtcd(lab, member) {
    startEtcdDaemon(lab, member);
  },
};
