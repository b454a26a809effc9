/**
 * The locally built etcd image for L4FLEET_TEST_RUNTIME=containers. No image registry is reachable here, so nothing
 * is pulled: the Debian 12 base is the lab's `l4fleet/base:bookworm` (deploy/docker/build-images.sh builds it from
 * a debootstrap rootfs with `docker import`); when it is missing it is built the same way, with the same tag. The
 * etcd image is then built FROM it with Debian's etcd-server and etcd-client (the same 3.4 as the process runtime),
 * tagged by a hash of its Dockerfile so a warm engine skips the build.
 *
 * Everything goes through the engine testcontainers found (DOCKER_HOST, ~/.testcontainers.properties, ...).
 */
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type Dockerode from 'dockerode';
import { getContainerRuntimeClient } from 'testcontainers';

const run = promisify(execFile);

/** The lab's base image (deploy/docker/build-images.sh): same name, same recipe. */
export const BASE_IMAGE = 'l4fleet/base:bookworm';

const ETCD_DOCKERFILE = `FROM ${BASE_IMAGE}
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \\
      etcd-server etcd-client && rm -rf /var/lib/apt/lists/*
`;

/** `l4fleet/test-etcd:<12 hex of the Dockerfile's sha256>`. */
export const ETCD_IMAGE = `l4fleet/test-etcd:${createHash('sha256').update(ETCD_DOCKERFILE).digest('hex').slice(0, 12)}`;

async function imageExists(docker: Dockerode, name: string): Promise<boolean> {
  try {
    await docker.getImage(name).inspect();
    return true;
  } catch {
    return false;
  }
}

/** Reads a build/import progress stream to its end; throws the first error the engine reported in it. */
async function follow(docker: Dockerode, stream: NodeJS.ReadableStream, what: string): Promise<string> {
  return await new Promise((resolve, reject) => {
    docker.modem.followProgress(stream, (err: Error | null, events: Array<{ stream?: string }>) => {
      const log = events
        .map((e) => e.stream ?? '')
        .join('')
        .slice(-4000);
      if (err) reject(new Error(`${what} failed: ${err.message}\n${log}`, { cause: err }));
      else resolve(log);
    });
  });
}

/** The mirror apt already uses (one-line or deb822 sources), as build-images.sh picks it. */
async function aptMirror(): Promise<string> {
  if (process.env.MIRROR) return process.env.MIRROR;
  const list = await readFile('/etc/apt/sources.list', 'utf8').catch(() => '');
  const oneLine = /^deb\s+(\S+)/m.exec(list)?.[1];
  if (oneLine) return oneLine;
  const dir = '/etc/apt/sources.list.d';
  for (const f of (await readdir(dir).catch(() => [])).filter((n) => n.endsWith('.sources')).sort()) {
    const uri = /^URIs:\s*(\S+)/m.exec(await readFile(join(dir, f), 'utf8'))?.[1];
    if (uri) return uri;
  }
  return 'http://deb.debian.org/debian';
}

async function buildBase(docker: Dockerode): Promise<void> {
  if (process.getuid?.() !== 0) {
    throw new Error(`${BASE_IMAGE} is missing and debootstrap needs root: run deploy/docker/build-images.sh as root`);
  }
  const rootfs = await mkdtemp(join(tmpdir(), 'l4f-rootfs-'));
  try {
    await run('debootstrap', ['--variant=minbase', 'bookworm', rootfs, await aptMirror()], {
      maxBuffer: 64 * 1024 * 1024,
    });
    const tar = spawn('tar', ['-C', rootfs, '-c', '.'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const tarExit = new Promise<number | null>((resolve) => tar.once('close', resolve));
    const [repo, tag] = BASE_IMAGE.split(':');
    const res = await docker.importImage(tar.stdout, { repo, tag });
    await follow(docker, res, `docker import ${BASE_IMAGE}`);
    const code = await tarExit;
    if (code !== 0) {
      await docker
        .getImage(BASE_IMAGE)
        .remove()
        .catch(() => undefined); // a truncated rootfs is no base
      throw new Error(`tar of the debootstrap rootfs ${rootfs} exited ${code}`);
    }
  } finally {
    await rm(rootfs, { recursive: true, force: true });
  }
}

async function buildEtcd(docker: Dockerode): Promise<void> {
  const ctx = await mkdtemp(join(tmpdir(), 'l4f-etcd-image-'));
  try {
    await writeFile(join(ctx, 'Dockerfile'), ETCD_DOCKERFILE);
    // Host networking for the build: apt-get needs the mirror, and the test engine may run without a NAT'd bridge
    // (dockerd --iptables=false), where a build container on the default network reaches nothing.
    const stream = await docker.buildImage(
      { context: ctx, src: ['Dockerfile'] },
      { t: ETCD_IMAGE, networkmode: 'host', rm: true, forcerm: true },
    );
    await follow(docker, stream, `docker build ${ETCD_IMAGE}`);
  } finally {
    await rm(ctx, { recursive: true, force: true });
  }
  if (!(await imageExists(docker, ETCD_IMAGE))) throw new Error(`docker build ${ETCD_IMAGE} produced no image`);
}

let ready: Promise<string> | undefined;

/**
 * Makes sure the etcd test image exists (base first) and returns its name. Cold: about a minute (debootstrap, then
 * apt-get); warm: one inspect. Call it in a long beforeAll (or once before the suite) to keep a cold build out of
 * short hook timeouts.
 */
export function ensureEtcdImage(): Promise<string> {
  ready ??= (async () => {
    const { dockerode } = (await getContainerRuntimeClient()).container;
    if (await imageExists(dockerode, ETCD_IMAGE)) return ETCD_IMAGE;
    if (!(await imageExists(dockerode, BASE_IMAGE))) await buildBase(dockerode);
    await buildEtcd(dockerode);
    return ETCD_IMAGE;
  })().catch((err) => {
    ready = undefined; // a later call may retry (e.g. after the engine came up)
    throw err;
  });
  return ready;
}
