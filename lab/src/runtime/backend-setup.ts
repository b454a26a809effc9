/**
 * Encapsulating backends (every forwarding but l2): each backend host runs `l4fleet backend setup` as a real one
 * would (docs/backend-host.md): decapsulation at tc ingress for packets from the fleet's nodes only, the VIPs on lo,
 * ARP and rp_filter settings. Run on every backend when a node or a backend is added, so the new node's address is
 * accepted before the router sends it any flow, and the new backend's as a peer (second chance) before it owns a slot.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '@l4fleet/process';
import { encapsulated } from '../topology/data-path.js';
import { attachmentOf, backendAttachment, hostsOfKind, type Topology } from '../topology/model.js';
import { cliBin } from './agent.js';
import { bpffsDir, mountBpffs, unmountBpffsUnder } from './bpffs.js';
import type { LabContext } from './lab-runtime.js';

// One CLI start plus a few bpftool calls; every backend runs it at once on add-node and add-backend, and on the
// loaded 2-core VM one took over 60 s (test/lab-bpf-routed, ipip, fifth backend added).
const SETUP_TIMEOUT_MS = 180_000;

/** Every node's addresses (the outer sources the bpf nodes use: node.address and address6), killed ones included. */
export function nodeAddresses(topology: Topology): string[] {
  return hostsOfKind(topology, 'node').flatMap((n) => {
    const a = attachmentOf(topology, 'fabric', n.name);
    return a.ipv6 ? [a.ipv4, a.ipv6] : [a.ipv4];
  });
}

/**
 * The other backends' addresses: a backend with no socket for a flow hands it to the slot's previous owner (second
 * chance, docs/design/0011-second-chance.md), which accepts only the senders on its allow list.
 */
export function peerAddresses(topology: Topology, backend: string): string[] {
  return hostsOfKind(topology, 'backend')
    .filter((b) => b.name !== backend)
    .flatMap((b) => {
      const a = backendAttachment(topology, b.name);
      return a.ipv6 ? [a.ipv4, a.ipv6] : [a.ipv4];
    });
}

/** Where `backend setup` keeps its record for a lab backend. */
function backendStateDir(hostDir: string): string {
  return join(hostDir, 'backend-state');
}

/** `l4fleet backend setup ...` for `backend`, its pins and record in its own state dir. */
export function backendSetupArgv(topology: Topology, backend: string, hostDir: string): string[] {
  const peers = peerAddresses(topology, backend);
  return [
    process.execPath,
    cliBin(),
    'backend',
    'setup',
    '--vip',
    ...topology.vips.map((v) => v.address),
    '--forwarding',
    topology.dataPath.forwarding,
    '--nodes',
    ...nodeAddresses(topology),
    '--interface',
    backendAttachment(topology, backend).iface,
    '--bpffs',
    bpffsDir(hostDir),
    '--state-dir',
    backendStateDir(hostDir),
    ...(peers.length > 0 ? ['--peers', ...peers] : []),
  ];
}

/** Sets `backend` up for the lab's encapsulation (idempotent); nothing with l2 forwarding. */
export async function setupBackend(lab: LabContext, backend: string): Promise<void> {
  if (!encapsulated(lab.topology.dataPath)) return;
  const dir = lab.hostDir(backend);
  await mountBpffs(bpffsDir(dir));
  await run(backendSetupArgv(lab.topology, backend, dir), { namespace: lab.ns(backend), timeoutMs: SETUP_TIMEOUT_MS });
}

/** Every backend again (the node or backend list changed); in parallel: each is one CLI start and a few bpftool calls. */
export async function setupBackends(lab: LabContext): Promise<void> {
  await Promise.all(hostsOfKind(lab.topology, 'backend').map((b) => setupBackend(lab, b.name)));
}

/**
 * Forgets a backend host that is made anew in a new network namespace (the Docker runtime's new container): its
 * program and filter went with the old namespace, but its pins and setup record stay on this machine, and setup
 * rightly refuses pins it has no record of in the namespace it runs in. A fresh bpf file system and no record make
 * the next setup a first one.
 */
export async function forgetBackendHost(lab: LabContext, backend: string): Promise<void> {
  const dir = lab.hostDir(backend);
  await unmountBpffsUnder(dir);
  await rm(backendStateDir(dir), { recursive: true, force: true });
}
