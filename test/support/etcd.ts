/**
 * A throwaway etcd for tests: Debian's /usr/bin/etcd (3.4) on free loopback ports in a temp dir, optionally with
 * TLS (a CA and certs made with openssl in the temp dir, client certs required) and user/password auth (root user,
 * `auth enable` through etcdctl). Always stopped: call stop() in afterAll/afterEach; a process exit hook kills
 * whatever a crashed test left behind.
 *
 * L4FLEET_TEST_RUNTIME=containers: the same etcd in a container through testcontainers instead (docker-etcd.ts;
 * needs a reachable Docker engine, the image is built locally), with the same handle.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface EtcdTls {
  /** PEM contents, ready for the etcd3 client's credentials / the store's tls options. */
  readonly ca: Buffer;
  readonly cert: Buffer;
  readonly key: Buffer;
  /** Paths of the same files (for CLI flags --cacert --cert --key). */
  readonly caFile: string;
  readonly certFile: string;
  readonly keyFile: string;
}

export interface EtcdOptions {
  /** Serve TLS only and require client certificates signed by the generated CA. */
  readonly tls?: boolean;
  /** Enable auth with a root user of this password. */
  readonly rootPassword?: string;
  /** Extra etcd flags, e.g. ['--auto-compaction-retention=0']. */
  readonly extraArgs?: readonly string[];
}

export interface EtcdHandle {
  /** Client URLs, e.g. ['http://127.0.0.1:40123']. */
  readonly endpoints: string[];
  /** The data directory (containers runtime: the path inside the container). */
  readonly dataDir: string;
  readonly tls: EtcdTls | undefined;
  /** etcdctl against this etcd (with TLS and root auth if enabled); returns stdout. */
  etcdctl(...args: string[]): Promise<string>;
  /** Stops gracefully (SIGTERM) and starts again on the same ports and data. */
  restart(): Promise<void>;
  /** SIGKILL, no restart. */
  kill(): Promise<void>;
  /** Starts again after kill(). */
  start(): Promise<void>;
  /** Stops and removes the temp dir; safe to call twice. */
  stop(): Promise<void>;
}

const ETCD = '/usr/bin/etcd';
const READY_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 5_000;

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

/** A free loopback TCP port (listen on 0, read it back, close). */
export async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** A CA, a server cert (127.0.0.1, localhost) and a client cert (CN root) in `dir`. */
export async function makeCerts(dir: string): Promise<EtcdTls> {
  const f = (n: string) => join(dir, n);
  const ssl = (...args: string[]) => run('openssl', args, { cwd: dir });
  await ssl('genrsa', '-out', f('ca.key'), '2048');
  await ssl(
    'req',
    '-x509',
    '-new',
    '-key',
    f('ca.key'),
    '-days',
    '2',
    '-subj',
    '/CN=l4fleet-test-ca',
    '-out',
    f('ca.pem'),
  );
  const ext = 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n';
  await writeFile(f('ext.cnf'), ext);
  for (const name of ['server', 'client']) {
    await ssl('genrsa', '-out', f(`${name}.key`), '2048');
    await ssl(
      'req',
      '-new',
      '-key',
      f(`${name}.key`),
      '-subj',
      `/CN=${name === 'client' ? 'root' : 'localhost'}`,
      '-out',
      f(`${name}.csr`),
    );
    await ssl(
      'x509',
      '-req',
      '-in',
      f(`${name}.csr`),
      '-CA',
      f('ca.pem'),
      '-CAkey',
      f('ca.key'),
      '-CAcreateserial',
      '-days',
      '2',
      '-extfile',
      f('ext.cnf'),
      '-out',
      f(`${name}.pem`),
    );
  }
  return {
    ca: await readFile(f('ca.pem')),
    cert: await readFile(f('client.pem')),
    key: await readFile(f('client.key')),
    caFile: f('ca.pem'),
    certFile: f('client.pem'),
    keyFile: f('client.key'),
  };
}

async function waitPort(port: number, deadline: number, child: ChildProcess, log: () => string): Promise<void> {
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`etcd exited (${child.exitCode ?? child.signalCode}) before serving:\n${log()}`);
    }
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline)
      throw new Error(`etcd did not listen on ${port} within ${READY_TIMEOUT_MS} ms:\n${log()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** etcd's flags for one member of a cluster, logging warnings only; the caller adds TLS and extra flags. */
export function memberFlags(o: {
  name: string;
  dataDir: string;
  listenClientUrl: string;
  advertiseClientUrl: string;
  peerUrl: string;
  /** `n1=http://...,n2=http://...`: every member's peer URL. */
  initialCluster: string;
}): string[] {
  return [
    '--name',
    o.name,
    '--data-dir',
    o.dataDir,
    '--listen-client-urls',
    o.listenClientUrl,
    '--advertise-client-urls',
    o.advertiseClientUrl,
    '--listen-peer-urls',
    o.peerUrl,
    '--initial-advertise-peer-urls',
    o.peerUrl,
    '--initial-cluster',
    o.initialCluster,
    '--initial-cluster-state',
    'new',
    '--logger',
    'zap',
    '--log-level',
    'warn',
  ];
}

/** etcd's flags for a one-member cluster (n1). */
export function singleMemberFlags(o: {
  dataDir: string;
  listenClientUrl: string;
  advertiseClientUrl: string;
  peerUrl: string;
}): string[] {
  return memberFlags({ ...o, name: 'n1', initialCluster: `n1=${o.peerUrl}` });
}

/** etcd 3.4 refuses to start on arches other than amd64/ppc64le/s390x unless told. */
function etcdEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  if (process.arch !== 'x64' && process.arch !== 'ppc64' && process.arch !== 's390x') {
    env.ETCD_UNSUPPORTED_ARCH = process.arch === 'arm64' ? 'arm64' : process.arch;
  }
  return env;
}

export async function startEtcd(opts: EtcdOptions = {}): Promise<EtcdHandle> {
  if (process.env.L4FLEET_TEST_RUNTIME === 'containers') {
    // Loaded on demand: the process runtime (and CI, which has no Docker engine) never loads testcontainers.
    const { startEtcdContainer } = await import('./docker-etcd.js');
    return await startEtcdContainer(opts);
  }
  const dir = await mkdtemp(join(tmpdir(), 'l4fleet-etcd-'));
  const dataDir = join(dir, 'data');
  const tls = opts.tls ? await makeCerts(dir) : undefined;
  const [clientPort, peerPort] = [await freePort(), await freePort()];
  const scheme = tls ? 'https' : 'http';
  const clientUrl = `${scheme}://127.0.0.1:${clientPort}`;
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  const args = [
    ...singleMemberFlags({ dataDir, listenClientUrl: clientUrl, advertiseClientUrl: clientUrl, peerUrl }),
    ...(tls
      ? [
          '--cert-file',
          join(dir, 'server.pem'),
          '--key-file',
          join(dir, 'server.key'),
          '--trusted-ca-file',
          tls.caFile,
          '--client-cert-auth',
        ]
      : []),
    ...(opts.extraArgs ?? []),
  ];
  const env = etcdEnv();

  let child: ChildProcess | undefined;
  let logTail = '';
  let stopped = false;
  let authEnabled = false;
  const etcdctl = async (...a: string[]): Promise<string> => {
    const flags = [`--endpoints=${clientUrl}`, '--dial-timeout=3s', '--command-timeout=10s'];
    if (tls) flags.push(`--cacert=${tls.caFile}`, `--cert=${tls.certFile}`, `--key=${tls.keyFile}`);
    if (opts.rootPassword && authEnabled) flags.push(`--user=root:${opts.rootPassword}`);
    const { stdout } = await run('etcdctl', [...flags, ...a], { env: { ...process.env, ETCDCTL_API: '3' } });
    return stdout;
  };

  const launch = async (): Promise<void> => {
    const c = spawn(ETCD, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    child = c;
    live.add(c);
    c.once('exit', () => live.delete(c));
    c.stderr?.on('data', (d: Buffer) => {
      logTail = (logTail + d.toString()).slice(-4000);
    });
    await waitPort(clientPort, Date.now() + READY_TIMEOUT_MS, c, () => logTail);
    // The port opens before the server is ready to serve; a health check makes the first test call fast.
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      try {
        await etcdctl('endpoint', 'health');
        return;
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`etcd not healthy: ${String(err)}\n${logTail}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  };

  const halt = async (signal: NodeJS.Signals): Promise<void> => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => c.once('exit', () => resolve()));
    c.kill(signal);
    const timer = setTimeout(() => c.kill('SIGKILL'), STOP_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
  };

  try {
    await launch();
    if (opts.rootPassword) {
      await etcdctl('user', 'add', `root:${opts.rootPassword}`);
      await etcdctl('auth', 'enable');
      authEnabled = true;
    }
  } catch (err) {
    await halt('SIGKILL');
    await rm(dir, { recursive: true, force: true });
    throw err;
  }

  return {
    endpoints: [clientUrl],
    dataDir,
    tls,
    etcdctl,
    restart: async () => {
      await halt('SIGTERM');
      await launch();
    },
    kill: async () => {
      await halt('SIGKILL');
    },
    start: async () => {
      if (!child) await launch();
    },
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await halt('SIGTERM');
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface EtcdClusterOptions {
  /** Number of members; default 3. */
  readonly members?: number;
  /** Extra etcd flags for every member. */
  readonly extraArgs?: readonly string[];
}

/** One member of a test cluster: stop it, kill it, freeze it (SIGSTOP: the port stays open, nothing answers). */
export interface EtcdMemberHandle {
  readonly name: string;
  /** This member's client URL. */
  readonly endpoint: string;
  /** SIGKILL; start() brings it back on the same ports and data. */
  kill(): Promise<void>;
  /** Stops gracefully (SIGTERM). */
  halt(): Promise<void>;
  /** Starts again after kill()/halt() (waits until it listens). */
  start(): Promise<void>;
  /** SIGSTOP: TCP connects still complete (the kernel's backlog) but no request is ever answered. */
  freeze(): void;
  /** SIGCONT after freeze(). */
  thaw(): void;
}

export interface EtcdClusterHandle {
  /** Every member's client URL, in member order. */
  readonly endpoints: string[];
  readonly members: readonly EtcdMemberHandle[];
  /** etcdctl against the given endpoints (default: all); returns stdout. */
  etcdctl(args: readonly string[], endpoints?: readonly string[]): Promise<string>;
  /** Stops every member (thawing frozen ones) and removes the temp dir; safe to call twice. */
  stop(): Promise<void>;
}

/**
 * A throwaway N-member etcd cluster (Debian's /usr/bin/etcd 3.4, plain http on free loopback ports), for failover
 * tests: members can be killed, stopped and frozen one by one. Always call stop() (an exit hook kills leftovers).
 */
export async function startEtcdCluster(opts: EtcdClusterOptions = {}): Promise<EtcdClusterHandle> {
  const n = opts.members ?? 3;
  const dir = await mkdtemp(join(tmpdir(), 'l4fleet-etcd-cluster-'));
  const env = etcdEnv();
  const specs: { name: string; clientPort: number; clientUrl: string; peerUrl: string }[] = [];
  for (let i = 1; i <= n; i++) {
    const [clientPort, peerPort] = [await freePort(), await freePort()];
    specs.push({
      name: `n${i}`,
      clientPort,
      clientUrl: `http://127.0.0.1:${clientPort}`,
      peerUrl: `http://127.0.0.1:${peerPort}`,
    });
  }
  const initialCluster = specs.map((s) => `${s.name}=${s.peerUrl}`).join(',');
  const etcdctl = async (a: readonly string[], endpoints: readonly string[] = specs.map((s) => s.clientUrl)) => {
    const flags = [`--endpoints=${endpoints.join(',')}`, '--dial-timeout=2s', '--command-timeout=5s'];
    const { stdout } = await run('etcdctl', [...flags, ...a], { env: { ...process.env, ETCDCTL_API: '3' } });
    return stdout;
  };

  const waitHealthy = async (endpoints: readonly string[]): Promise<void> => {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      try {
        await etcdctl(['endpoint', 'health'], endpoints);
        return;
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`etcd ${endpoints.join(',')} not healthy: ${String(err)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  };

  const members = specs.map((spec) => {
    let child: ChildProcess | undefined;
    let logTail = '';
    let frozen = false;
    const args = memberFlags({
      name: spec.name,
      dataDir: join(dir, spec.name),
      listenClientUrl: spec.clientUrl,
      advertiseClientUrl: spec.clientUrl,
      peerUrl: spec.peerUrl,
      initialCluster,
    });
    const launch = async (): Promise<void> => {
      if (child) return;
      const c = spawn(ETCD, [...args, ...(opts.extraArgs ?? [])], { env, stdio: ['ignore', 'ignore', 'pipe'] });
      child = c;
      live.add(c);
      c.once('exit', () => live.delete(c));
      c.stderr?.on('data', (d: Buffer) => {
        logTail = (logTail + d.toString()).slice(-4000);
      });
      await waitPort(spec.clientPort, Date.now() + READY_TIMEOUT_MS, c, () => logTail);
    };
    const halt = async (signal: NodeJS.Signals): Promise<void> => {
      const c = child;
      child = undefined;
      if (!c || c.exitCode !== null || c.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => c.once('exit', () => resolve()));
      c.kill(signal);
      if (frozen) c.kill('SIGCONT'); // a stopped process acts on SIGTERM only once it runs again
      frozen = false;
      const timer = setTimeout(() => c.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
    };
    const member: EtcdMemberHandle = {
      name: spec.name,
      endpoint: spec.clientUrl,
      kill: () => halt('SIGKILL'),
      halt: () => halt('SIGTERM'),
      start: async () => {
        await launch();
        await waitHealthy([spec.clientUrl]);
      },
      freeze: () => {
        if (child && !frozen) {
          child.kill('SIGSTOP');
          frozen = true;
        }
      },
      thaw: () => {
        if (child && frozen) {
          child.kill('SIGCONT');
          frozen = false;
        }
      },
    };
    return { member, launch, halt };
  });

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await Promise.all(members.map((m) => m.halt('SIGTERM')));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    // Members wait for each other (quorum) before serving: start all, then wait for the cluster's health.
    await Promise.all(members.map((m) => m.launch()));
    await waitHealthy(specs.map((s) => s.clientUrl));
  } catch (err) {
    await stop();
    throw err;
  }
  return { endpoints: specs.map((s) => s.clientUrl), members: members.map((m) => m.member), etcdctl, stop };
}
