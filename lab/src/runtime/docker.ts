/**
 * The Docker runtime: every lab host is a container started with `--network none` from the locally built images
 * (deploy/docker/build-images.sh), its network namespace given the lab's name with `ip netns attach`, and then wired
 * by exactly the same plan as the netns runtime (veths, bridges, addresses, sysctls): one model, one wiring.
 * Each container waits for `/run/l4f-ready` before its entrypoint runs, so daemons start on a wired network.
 */

import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '@l4fleet/process';
import { LabError } from '../errors.js';
import { vipSpec } from '../topology/containerlab.js';
import { memberPort, vipsOnBackendLo } from '../topology/data-path.js';
import { isLabId } from '../topology/lab-id.js';
import { backendAttachment, type LabHost, type Topology } from '../topology/model.js';
import { agentConfigPath } from './agent.js';
import { nodeBfddConfigPath } from './bfd.js';
import { bpffsDir } from './bpffs.js';
import { etcdArgv, natsArgv } from './control.js';
import { type ImageTree, imageTree, imageTreeDifferences, LAB_ROOT } from './image-tree.js';
import type { BpfMissing } from './up-data-path.js';

export const READY_FILE = '/run/l4f-ready';
export const LAB_LABEL = 'l4fleet.lab';
/** The control container's data (etcd members' data dirs, NATS JetStream); lives as long as the container. */
export const CONTROL_DATA_DIR = '/var/lib/l4fleet';
/** Where the images' entrypoints look for a bfdd config (deploy/docker/{router,agent}/entrypoint.sh). */
const BFDD_CONF = '/etc/frr/bfdd.conf';

const IMAGE_OF: Readonly<Record<string, string>> = {
  client: 'l4fleet/backend:latest',
  router: 'l4fleet/router:latest',
  node: 'l4fleet/agent:latest',
  backend: 'l4fleet/backend:latest',
  control: 'l4fleet/control:latest',
};

/** The lab image a host of `kind` runs (LabError for a kind that has none). */
export function imageOf(kind: string): string {
  const image = IMAGE_OF[kind];
  if (!image) throw new LabError('RUNTIME_UNSUPPORTED', `host kind "${kind}" has no container image`);
  return image;
}

/** Every lab image, each once, in IMAGE_OF's order. */
export function labImages(): string[] {
  return [...new Set(Object.values(IMAGE_OF))];
}

/** A lab image built from another tree, with what differs (image-tree.ts's phrases, joined by "; "). */
export interface StaleLabImage {
  readonly image: string;
  readonly differences: string;
}

/** What this Docker engine lacks of `images`, and which of them were built from another tree than `current`. */
export interface LabImagesState {
  readonly missing: string[];
  readonly stale: StaleLabImage[];
}

/**
 * The lab images (default: all) this Docker engine lacks or holds from another tree. They are only ever built here
 * (deploy/docker/build-images.sh): every `docker run` of the lab says `--pull never`, so a missing one is refused
 * rather than pulled from a registry (where anyone may publish an l4fleet/agent, which the lab runs with NET_ADMIN);
 * one whose labels differ from the tree the lab runs from would run old code (image-tree.ts).
 */
export async function labImagesState(
  images: readonly string[] = labImages(),
  current: ImageTree = imageTree(),
): Promise<LabImagesState> {
  const missing: string[] = [];
  const stale: StaleLabImage[] = [];
  for (const image of images) {
    const r = await run(['docker', 'image', 'inspect', '--format', '{{json .Config.Labels}}', image], {
      allowFailure: true,
      timeoutMs: 10_000,
    });
    if (r.code !== 0) {
      missing.push(image);
      continue;
    }
    const differences = imageTreeDifferences(imageLabels(image, r.stdout), current);
    if (differences.length > 0) stale.push({ image, differences: differences.join('; ') });
  }
  return { missing, stale };
}

/** `docker image inspect`'s `{{json .Config.Labels}}`: an object, or null for an image without labels. */
function imageLabels(image: string, json: string): Record<string, string> {
  try {
    return (JSON.parse(json) as Record<string, string> | null) ?? {};
  } catch (cause) {
    throw new LabError('COMMAND_FAILED', `docker image inspect ${image}: labels "${json.trim()}" are no JSON`, {
      cause,
    });
  }
}

/**
 * Refuses (LabError RUNTIME_UNSUPPORTED) when the engine lacks one of `images` or holds one built from another tree,
 * naming them, the digests and the command that builds them; nothing is made before. `lab up` checks every image,
 * a host made later (add-node, restart, a restored backend) its own.
 */
export async function assertLabImages(images: readonly string[] = labImages()): Promise<void> {
  const { missing, stale } = await labImagesState(images);
  if (missing.length > 0) {
    throw new LabError(
      'RUNTIME_UNSUPPORTED',
      `--runtime docker: the Docker engine lacks the lab images ${missing.join(', ')} (never pulled from a registry); build them with deploy/docker/build-images.sh`,
    );
  }
  if (stale.length > 0) {
    // Images built together differ alike: each difference once, with the images that have it.
    const byDifference = new Map<string, string[]>();
    for (const { image, differences } of stale)
      byDifference.set(differences, [...(byDifference.get(differences) ?? []), image]);
    const named = [...byDifference].map(([differences, alike]) => `${alike.join(', ')} (${differences})`);
    throw new LabError(
      'RUNTIME_UNSUPPORTED',
      `--runtime docker: the lab images ${named.join(', ')} were built from another tree than this one (${LAB_ROOT}), so they would run its old code; build them again with deploy/docker/build-images.sh (after npm run build)`,
    );
  }
}

export function docker(args: readonly string[], timeoutMs = 60_000) {
  return run(['docker', ...args], { timeoutMs });
}

/** The container of `host`: named like its network namespace. */
export function containerName(host: LabHost): string {
  return host.namespace ?? host.name;
}

export async function dockerAvailable(): Promise<boolean> {
  const r = await run(['docker', 'version', '--format', '{{.Server.Version}}'], {
    allowFailure: true,
    timeoutMs: 10_000,
  });
  return r.code === 0;
}

/** The identity server's listen list, shared with the netns runtime. */
export function backendListen(topology: Topology, backend: string): string[] {
  const self = backendAttachment(topology, backend);
  const listen = new Set<string>();
  for (const vip of topology.vips) {
    const port = memberPort(topology.dataPath, vip.port);
    // TCP on the wildcard (it answers from the connection's own address); UDP on each VIP, see identity/server.ts.
    // Under nat no VIP is on the backend: the member address and port alone (the node rewrites the answer back).
    if (vip.protocol === 'tcp') listen.add(`tcp:[::]:${port}`);
    else if (topology.dataPath.forwarding !== 'nat') listen.add(vipSpec(vip));
    if (vip.protocol === 'udp') listen.add(`udp:${self.ipv4}:${port}`);
  }
  return [...listen];
}

/** Where build-images.sh stages the bpf data plane's loader and objects in the agent image. */
const IMAGE_NATIVE_BIN = '/opt/l4fleet/packages/dataplane/native/bin';

/**
 * What the agent image lacks of the bpf data plane, undefined when it has all: the loader and node object (staged
 * only when this machine built them) and libbpf1 (images built before the bpf data plane ran in Docker lack it).
 * One short container run: the image's own files, not a label that could disagree with them.
 */
export async function agentImageBpfMissing(): Promise<BpfMissing | undefined> {
  const image = IMAGE_OF.node as string;
  const files = [`${IMAGE_NATIVE_BIN}/l4fleet-bpf`, `${IMAGE_NATIVE_BIN}/bpf/node.bpf.o`];
  const check = [
    ...files.map((f) => `[ -e ${f} ] || { echo ${f}; exit 0; }`),
    "ldconfig -p | grep -q 'libbpf[.]so[.]1 ' || echo libbpf.so.1",
  ].join('; ');
  const argv = ['docker', 'run', '--rm', '--pull', 'never', '--network', 'none', '--entrypoint', '/bin/sh', image];
  const r = await run([...argv, '-c', check], { allowFailure: true, timeoutMs: 60_000 });
  const hint = 'build the images again with deploy/docker/build-images.sh (after npm run build with clang installed)';
  if (r.code !== 0) return { what: `image ${image}`, hint };
  const what = r.stdout.trim();
  return what === '' ? undefined : { what: `${what} in image ${image}`, hint };
}

/** `docker run` arguments for one host: image, mounts and the command its entrypoint runs once released. */
export function containerSpec(topology: Topology, host: LabHost, hostDirOf: (h: string) => string): string[] {
  const dir = hostDirOf(host.name);
  const mounts: string[] = [];
  const caps = ['NET_ADMIN'];
  let command: string[];
  switch (host.kind) {
    case 'router':
      mounts.push(
        `${dir}/bgpd.conf:/etc/frr/bgpd.conf:ro`,
        `${dir}/zebra.conf:/etc/frr/zebra.conf:ro`,
        `${dir}/vty:/run/frr`,
      );
      // With BFD the entrypoint starts bfdd beside bgpd (prepareFrr wrote bfdd.conf with the nodes' profile).
      if (topology.bgp.bfd) mounts.push(`${dir}/bfdd.conf:${BFDD_CONF}:ro`);
      // FRR's privilege setup wants these even to run as user frr (zebra: net_admin, net_raw, sys_admin).
      caps.push('NET_RAW', 'SYS_ADMIN');
      command = ['/usr/local/bin/l4fleet-router'];
      break;
    case 'node':
      mounts.push(`${agentConfigPath(dir)}:/etc/l4fleet/agent.yaml:ro`);
      if (topology.bgp.bfd) {
        // The node's standalone bfdd (bfd.ts: the router as its one peer); FRR's privilege setup wants SYS_ADMIN.
        mounts.push(`${nodeBfddConfigPath(dir)}:${BFDD_CONF}:ro`);
        caps.push('NET_RAW', 'SYS_ADMIN');
      }
      if (topology.dataPath.dataplane === 'bpf') {
        // The node's bpf file system (mounted on this machine before the container starts, node-host.ts) at the
        // same path, so agent.yaml's bpffsPath is right in both places and the pins outlive the container; bpf(2)
        // needs SYS_ADMIN under Docker's seccomp profile.
        const bpffs = bpffsDir(dir);
        mounts.push(`${bpffs}:${bpffs}`);
        if (!caps.includes('SYS_ADMIN')) caps.push('SYS_ADMIN');
      }
      command = ['/usr/local/bin/l4fleet-node', '--config', '/etc/l4fleet/agent.yaml'];
      break;
    case 'backend':
      command = [
        '/usr/local/bin/l4fleet-backend',
        ...backendListen(topology, host.name).flatMap((l) => ['--listen', l]),
      ];
      break;
    case 'control': {
      const etcd = topology.control.etcdMembers.map((m) => `${etcdArgv(topology, CONTROL_DATA_DIR, m).join(' ')} & `);
      const nats = natsArgv(topology, CONTROL_DATA_DIR).join(' ');
      command = ['sh', '-c', `mkdir -p ${CONTROL_DATA_DIR} && ${etcd.join('')}exec ${nats}`];
      break;
    }
    default:
      command = ['sleep', 'infinity'];
  }
  const image = IMAGE_OF[host.kind];
  if (!image) throw new LabError('RUNTIME_UNSUPPORTED', `host "${host.name}" (${host.kind}) has no container image`);
  return [
    'run',
    '-d',
    // Only the images built here (labImagesState): never one from a registry.
    '--pull',
    'never',
    '--name',
    containerName(host),
    '--hostname',
    host.name,
    '--label',
    `${LAB_LABEL}=${topology.id}`,
    '--network',
    'none',
    ...caps.flatMap((c) => ['--cap-add', c]),
    // Docker turns IPv6 off in containers by default; the lab has IPv6 links and an IPv6 VIP.
    '--sysctl',
    'net.ipv6.conf.all.disable_ipv6=0',
    '--sysctl',
    'net.ipv6.conf.default.disable_ipv6=0',
    '-e',
    `L4FLEET_BACKEND_NAME=${host.name}`,
    // The backend image's entrypoint puts these on lo: the same VIPs as the netns plan, none under nat or encapsulation.
    '-e',
    `L4FLEET_VIPS=${vipsOnBackendLo(topology.dataPath) ? topology.vips.map(vipSpec).join(',') : ''}`,
    ...mounts.flatMap((m) => ['-v', m]),
    '--entrypoint',
    '/bin/sh',
    image,
    '-c',
    `while [ ! -e ${READY_FILE} ]; do sleep 0.1; done; exec "$@"`,
    'l4f-wait',
    ...command,
  ];
}

/** Starts the container of `host` and names its network namespace like the netns runtime's; returns its pid. */
export async function createContainer(
  topology: Topology,
  host: LabHost,
  hostDirOf: (h: string) => string,
): Promise<number> {
  const name = containerName(host);
  await removeContainer(topology.id, name, hostDirOf(host.name));
  await docker(containerSpec(topology, host, hostDirOf));
  const pid = Number((await docker(['inspect', '-f', '{{.State.Pid}}', name])).stdout.trim());
  if (!Number.isInteger(pid) || pid <= 0) throw new LabError('COMMAND_FAILED', `container "${name}" has no pid`);
  await run(['ip', 'netns', 'delete', name], { allowFailure: true });
  await run(['ip', 'netns', 'attach', name, String(pid)]);
  return pid;
}

/**
 * Removes container `name` of lab `id` (`docker rm -f`), its output kept first in `dir`/container.log; nothing when
 * there is none. A container of that name without the label `l4fleet.lab=<id>` is someone else's: it is refused
 * (LabError naming it and its label), never removed.
 */
export async function removeContainer(id: string, name: string, dir: string): Promise<void> {
  if (!(await labContainerExists(id, name))) return;
  await keepContainerLogs(name, dir);
  await run(['docker', 'rm', '-f', name], { allowFailure: true, timeoutMs: 60_000 });
}

/** Whether lab `id`'s container `name` exists; throws if a container of that name is not the lab's. */
async function labContainerExists(id: string, name: string): Promise<boolean> {
  const r = await run(['docker', 'container', 'inspect', '-f', `{{index .Config.Labels "${LAB_LABEL}"}}`, name], {
    allowFailure: true,
    timeoutMs: 30_000,
  });
  if (r.code !== 0) {
    if (/no such (container|object)/i.test(r.stderr)) return false;
    throw new LabError(
      'COMMAND_FAILED',
      `docker container inspect ${name} failed: ${r.stderr.trim() || `exit ${r.code}`}`,
    );
  }
  const label = r.stdout.trim();
  if (label === id) return true;
  const has = label === '' || label === '<no value>' ? `no label ${LAB_LABEL}` : `label ${LAB_LABEL}=${label}`;
  throw new LabError(
    'COMMAND_FAILED',
    `container "${name}" is not lab "${id}"'s (it has ${has}): left alone; remove or rename it (docker rm -f ${name}) if it is unused`,
  );
}

/** Where a host's replaced containers' output is kept (appended), beside its other files. */
export const CONTAINER_LOG = 'container.log';

/**
 * The output of the host's old container, appended to `<host dir>/container.log` before `docker rm -f` deletes it
 * with the container: after `lab kill`/`restart`, a failed backend or a failed add-node, what the daemons said
 * before is still there. The running container's own is `docker logs <name>`. No old container: nothing.
 */
export async function keepContainerLogs(name: string, dir: string): Promise<void> {
  const logs = await run(['docker', 'logs', '--timestamps', name], { allowFailure: true, timeoutMs: 30_000 }).catch(
    () => undefined,
  );
  if (logs?.code !== 0 || (logs.stdout === '' && logs.stderr === '')) return;
  mkdirSync(dir, { recursive: true });
  const head = `--- container ${name}, removed ${new Date().toISOString()}: stdout, then stderr\n`;
  appendFileSync(join(dir, CONTAINER_LOG), `${head}${logs.stdout}${logs.stderr}`);
}

/** Lets the container's entrypoint run (its network is wired by now). */
export async function releaseContainer(host: LabHost): Promise<void> {
  await docker(['exec', containerName(host), 'touch', READY_FILE]);
}

/**
 * Removes every container of lab `id` (by label): how many, undefined when no Docker engine answers (nothing could be
 * removed; downLab says so for a Docker lab).
 */
export async function removeLabContainers(id: string): Promise<number | undefined> {
  const ps = await run(['docker', 'ps', '-aq', '--filter', `label=${LAB_LABEL}=${id}`], {
    allowFailure: true,
    timeoutMs: 10_000,
  }).catch(() => undefined);
  if (ps?.code !== 0) return undefined;
  const ids = ps.stdout.split('\n').filter((s) => s.trim() !== '');
  if (ids.length > 0) await run(['docker', 'rm', '-f', ...ids], { allowFailure: true, timeoutMs: 60_000 });
  return ids.length;
}

/** The lab ids of every container labelled l4fleet.lab (`down --all`), undefined when no Docker engine answers. */
export async function labContainerIds(): Promise<string[] | undefined> {
  const ps = await run(
    ['docker', 'ps', '-a', '--filter', `label=${LAB_LABEL}`, '--format', `{{.Label "${LAB_LABEL}"}}`],
    {
      allowFailure: true,
      timeoutMs: 10_000,
    },
  ).catch(() => undefined);
  if (ps?.code !== 0) return undefined;
  // Only ids a lab can have: a label set by hand to something else names no lab `down` could remove.
  return [...new Set(ps.stdout.split('\n').map((s) => s.trim()))].filter(isLabId);
}
