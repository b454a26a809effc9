/**
 * startEtcd() for L4FLEET_TEST_RUNTIME=containers: the same etcd 3.4 in a container started by testcontainers
 * (GenericContainer, the locally built image of docker-image.ts), its client port published on a free host port
 * that stays the same across restart/kill/start, so clients keep their endpoints. TLS (certs made on the host,
 * copied in) and root auth work as in the process runtime; etcdctl runs inside the container.
 *
 * Needs a reachable Docker engine with a default bridge network (port publishing); testcontainers' reaper (Ryuk)
 * is turned off because its image cannot be pulled here, so stop() and a process exit hook remove the containers.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type EtcdHandle, type EtcdOptions, makeCerts, singleMemberFlags } from '@l4fleet/daemons';
import { freePort } from '@l4fleet/process';
import { GenericContainer, getContainerRuntimeClient, type StartedTestContainer, Wait } from 'testcontainers';
import { ensureEtcdImage } from './docker-image.js';

process.env.TESTCONTAINERS_RYUK_DISABLED ??= 'true';

/** Label on every container this helper starts: `docker rm -f $(docker ps -aq --filter label=l4fleet.test=etcd)`. */
export const TEST_LABEL = 'l4fleet.test';
const CLIENT_PORT = 2379;
const DATA_DIR = '/var/lib/l4fleet-etcd/data';
const CERT_DIR = '/etc/l4fleet-etcd';
const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_S = 5;

const live = new Set<string>();
// Without Ryuk nothing else removes a crashed test's containers; 'exit' allows only synchronous work.
process.once('exit', () => {
  if (live.size === 0) return;
  try {
    execFileSync('docker', ['rm', '-f', ...live], { stdio: 'ignore', timeout: 10_000 });
  } catch {
    // best effort: the label above finds leftovers
  }
});

/**
 * Where the published port answers. An engine on a unix socket runs on this machine and publishes on its addresses:
 * 127.0.0.1 (what the TLS certificate names). testcontainers would say the bridge gateway when /.dockerenv exists
 * (it assumes the engine of the outer host), which is wrong for a dockerd inside the same container.
 * TESTCONTAINERS_HOST_OVERRIDE wins; a tcp:// engine is reached at its own host name.
 */
function publishedHost(c: StartedTestContainer): string {
  const override = process.env.TESTCONTAINERS_HOST_OVERRIDE;
  if (override) return override;
  const engine = process.env.DOCKER_HOST ?? 'unix:///var/run/docker.sock';
  return engine.startsWith('unix:') || c.getHost() === 'localhost' ? '127.0.0.1' : c.getHost();
}

export async function startEtcdContainer(opts: EtcdOptions = {}): Promise<EtcdHandle> {
  const image = await ensureEtcdImage();
  const dir = await mkdtemp(join(tmpdir(), 'l4fleet-etcd-ct-'));
  let container: StartedTestContainer | undefined;
  try {
    const tls = opts.tls ? await makeCerts(dir) : undefined;
    const hostPort = await freePort();
    const scheme = tls ? 'https' : 'http';
    const inside = (f: string) => `${CERT_DIR}/${f}`;
    const tlsFlags = tls
      ? ['--cert-file', inside('server.pem'), '--key-file', inside('server.key'), '--trusted-ca-file', inside('ca.pem')]
      : [];
    const ctlTls = tls
      ? [`--cacert=${inside('ca.pem')}`, `--cert=${inside('client.pem')}`, `--key=${inside('client.key')}`]
      : [];
    const ctlBase = [
      `--endpoints=${scheme}://127.0.0.1:${CLIENT_PORT}`,
      '--dial-timeout=3s',
      '--command-timeout=10s',
      ...ctlTls,
    ];

    let builder = new GenericContainer(image)
      .withName(`l4fleet-etcd-${Math.random().toString(36).slice(2, 10)}`)
      .withLabels({ [TEST_LABEL]: 'etcd' })
      .withExposedPorts({ container: CLIENT_PORT, host: hostPort })
      .withEnvironment({ ETCDCTL_API: '3' })
      .withCommand([
        '/usr/bin/etcd',
        ...singleMemberFlags({
          dataDir: DATA_DIR,
          // The wildcard: the published port reaches the container over its bridge address, not loopback.
          listenClientUrl: `${scheme}://0.0.0.0:${CLIENT_PORT}`,
          advertiseClientUrl: `${scheme}://127.0.0.1:${hostPort}`,
          peerUrl: 'http://127.0.0.1:2380',
        }),
        ...(tls ? [...tlsFlags, '--client-cert-auth'] : []),
        ...(opts.extraArgs ?? []),
      ])
      // The published port accepts connections (docker-proxy) before etcd serves: wait for a health check inside.
      // With auth enabled etcdctl 3.4 counts "permission denied" as healthy, so restarts need no password here.
      .withWaitStrategy(Wait.forSuccessfulCommand(['etcdctl', ...ctlBase, 'endpoint', 'health'].join(' ')))
      .withStartupTimeout(READY_TIMEOUT_MS);
    if (tls) {
      builder = builder.withCopyFilesToContainer(
        ['ca.pem', 'server.pem', 'server.key', 'client.pem', 'client.key'].map((f) => ({
          source: join(dir, f),
          target: inside(f),
        })),
      );
    }
    container = await builder.start();
    live.add(container.getId());
    const c = container;

    let authEnabled = false;
    let running = true;
    let stopped = false;
    const etcdctl = async (...a: string[]): Promise<string> => {
      const user = opts.rootPassword && authEnabled ? [`--user=root:${opts.rootPassword}`] : [];
      const r = await c.exec(['etcdctl', ...ctlBase, ...user, ...a]);
      if (r.exitCode !== 0) {
        throw new Error(
          `etcdctl ${a.join(' ')} exited ${r.exitCode} in container ${c.getName()}: ${r.stderr || r.output}`,
        );
      }
      return r.stdout;
    };
    if (opts.rootPassword) {
      await etcdctl('user', 'add', `root:${opts.rootPassword}`);
      await etcdctl('auth', 'enable');
      authEnabled = true;
    }
    // A docker restart of a stopped container starts it; testcontainers then runs the wait strategy again.
    const restart = async (timeoutS: number) => {
      running = false;
      await c.restart({ timeout: timeoutS });
      running = true;
    };
    return {
      endpoints: [`${scheme}://${publishedHost(c)}:${hostPort}`],
      dataDir: DATA_DIR,
      tls,
      etcdctl,
      restart: () => restart(STOP_TIMEOUT_S),
      kill: async () => {
        if (!running) return;
        running = false;
        const { dockerode } = (await getContainerRuntimeClient()).container;
        await dockerode.getContainer(c.getId()).kill({ signal: 'SIGKILL' });
        await dockerode.getContainer(c.getId()).wait({ condition: 'not-running' });
      },
      start: async () => {
        if (!running) await restart(0);
      },
      stop: async () => {
        if (stopped) return;
        stopped = true;
        await c.stop({ timeout: STOP_TIMEOUT_S, remove: true });
        live.delete(c.getId());
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    if (container) {
      await container.stop({ timeout: 0, remove: true }).catch(() => undefined);
      live.delete(container.getId());
    }
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
