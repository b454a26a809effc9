/**
 * A throwaway etcd of our own (tests, benches): Debian's /usr/bin/etcd (3.4) on free loopback ports in a temp
 * dir, optionally with TLS (certs made with openssl, client certs required) and user/password auth (root user,
 * `auth enable` through etcdctl). Always call stop(); an exit hook (@l4fleet/process) kills what a crash left.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Child, canConnect, freePort, run, spawnChild, waitFor } from '@l4fleet/process';
import { DaemonError } from './errors.js';
import { type EtcdTls, makeCerts } from './etcd-certs.js';
import { ETCD_BIN, etcdEnv, singleMemberFlags } from './etcd-flags.js';

export const ETCD_READY_TIMEOUT_MS = 20_000;

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
  /** Stops gracefully (SIGTERM) and starts again on the same ports and data; after stop(): STOPPED. */
  restart(): Promise<void>;
  /** SIGKILL, no restart. */
  kill(): Promise<void>;
  /** Starts again after kill(); after stop(): STOPPED. */
  start(): Promise<void>;
  /** Stops and removes the temp dir; safe to call twice. */
  stop(): Promise<void>;
}

/** `etcdctl` (API v3) with `flags` then `args`; returns stdout. */
export async function etcdctl(flags: readonly string[], args: readonly string[]): Promise<string> {
  return (await run(['etcdctl', ...flags, ...args], { env: { ...process.env, ETCDCTL_API: '3' } })).stdout;
}

/** Starts `argv` as etcd and waits until `clientPort` accepts and `healthy` answers; kills it on failure. */
export async function launchEtcd(
  args: readonly string[],
  clientPort: number,
  healthy: () => Promise<unknown>,
): Promise<Child> {
  const c = spawnChild([ETCD_BIN, ...args], { env: etcdEnv() });
  const exited = () => (c.exitReason() ? `etcd ${c.exitReason()} before serving:\n${c.log()}` : undefined);
  try {
    await waitFor(
      `etcd on port ${clientPort}`,
      async () => ((await canConnect(clientPort)) ? true : undefined),
      ETCD_READY_TIMEOUT_MS,
      50,
      exited,
    );
    // The port opens before the server is ready to serve; a health check makes the first test call fast.
    await waitFor(
      `etcd on port ${clientPort} healthy`,
      async () => (await healthy()) ?? true,
      ETCD_READY_TIMEOUT_MS,
      100,
      exited,
    );
  } catch (err) {
    await c.stop('SIGKILL');
    throw err;
  }
  return c;
}

export async function startEtcd(opts: EtcdOptions = {}): Promise<EtcdHandle> {
  const dir = await mkdtemp(join(tmpdir(), 'l4fleet-etcd-'));
  const dataDir = join(dir, 'data');
  let child: Child | undefined;
  let stopped = false;
  let authEnabled = false;
  try {
    const tls = opts.tls ? await makeCerts(dir) : undefined;
    const [clientPort, peerPort] = [await freePort(), await freePort()];
    const clientUrl = `${tls ? 'https' : 'http'}://127.0.0.1:${clientPort}`;
    const peerUrl = `http://127.0.0.1:${peerPort}`;
    const tlsFlags = tls ? ['--cert-file', join(dir, 'server.pem'), '--key-file', join(dir, 'server.key')] : [];
    const args = [
      ...singleMemberFlags({ dataDir, listenClientUrl: clientUrl, advertiseClientUrl: clientUrl, peerUrl }),
      ...(tls ? [...tlsFlags, '--trusted-ca-file', tls.caFile, '--client-cert-auth'] : []),
      ...(opts.extraArgs ?? []),
    ];
    const ctl = (...a: string[]): Promise<string> => {
      const flags = [`--endpoints=${clientUrl}`, '--dial-timeout=3s', '--command-timeout=10s'];
      if (tls) flags.push(`--cacert=${tls.caFile}`, `--cert=${tls.certFile}`, `--key=${tls.keyFile}`);
      if (opts.rootPassword && authEnabled) flags.push(`--user=root:${opts.rootPassword}`);
      return etcdctl(flags, a);
    };
    const launch = async () => {
      if (stopped) throw new DaemonError('STOPPED', `etcd ${clientUrl}: stopped (its data dir is gone)`);
      child = await launchEtcd(args, clientPort, () => ctl('endpoint', 'health'));
    };
    const halt = async (signal: NodeJS.Signals) => {
      const c = child;
      child = undefined;
      await c?.stop(signal);
    };

    await launch();
    if (opts.rootPassword) {
      await ctl('user', 'add', `root:${opts.rootPassword}`);
      await ctl('auth', 'enable');
      authEnabled = true;
    }
    return {
      endpoints: [clientUrl],
      dataDir,
      tls,
      etcdctl: ctl,
      restart: async () => {
        await halt('SIGTERM');
        await launch();
      },
      kill: () => halt('SIGKILL'),
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
  } catch (err) {
    await child?.stop('SIGKILL');
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
