/**
 * A throwaway N-member etcd cluster (Debian's /usr/bin/etcd 3.4, plain http on free loopback ports), for failover
 * tests: members can be killed, stopped and frozen one by one. Always call stop() (an exit hook kills leftovers).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Child, freePort, waitFor } from '@l4fleet/process';
import { DaemonError } from './errors.js';
import { ETCD_READY_TIMEOUT_MS, etcdctl, launchEtcd } from './etcd.js';
import { etcdMemberFlags } from './etcd-flags.js';

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
  /** Starts again after kill()/halt() (waits until it is healthy); after the cluster's stop(): STOPPED. */
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

export async function startEtcdCluster(opts: EtcdClusterOptions = {}): Promise<EtcdClusterHandle> {
  const n = opts.members ?? 3;
  const dir = await mkdtemp(join(tmpdir(), 'l4fleet-etcd-cluster-'));
  const specs: { name: string; clientPort: number; clientUrl: string; peerUrl: string }[] = [];
  for (let i = 1; i <= n; i++) {
    const [clientPort, peerPort] = [await freePort(), await freePort()];
    const clientUrl = `http://127.0.0.1:${clientPort}`;
    specs.push({ name: `n${i}`, clientPort, clientUrl, peerUrl: `http://127.0.0.1:${peerPort}` });
  }
  const all = specs.map((s) => s.clientUrl);
  const initialCluster = specs.map((s) => `${s.name}=${s.peerUrl}`).join(',');
  const ctl = (args: readonly string[], endpoints: readonly string[] = all) =>
    etcdctl([`--endpoints=${endpoints.join(',')}`, '--dial-timeout=2s', '--command-timeout=5s'], args);

  let stopped = false;
  const members = specs.map((spec) => {
    let child: Child | undefined;
    let launching: Promise<void> | undefined;
    let frozen = false;
    const args = [
      ...etcdMemberFlags({
        name: spec.name,
        dataDir: join(dir, spec.name),
        listenClientUrl: spec.clientUrl,
        advertiseClientUrl: spec.clientUrl,
        peerUrl: spec.peerUrl,
        initialCluster,
      }),
      ...(opts.extraArgs ?? []),
    ];
    // A member alone cannot answer a health check (no quorum): `launch` waits for its port, `start` for health.
    // The launch in flight is kept: halt() waits for it, so a member that comes up during a stop is stopped too.
    const launch = (healthy: () => Promise<unknown>): Promise<void> => {
      if (stopped) {
        const why = `etcd member "${spec.name}": the cluster was stopped (its data dir is gone)`;
        return Promise.reject(new DaemonError('STOPPED', why));
      }
      if (child) return Promise.resolve();
      launching ??= launchEtcd(args, spec.clientPort, healthy)
        .then((c) => {
          child = c;
        })
        .finally(() => {
          launching = undefined;
        });
      return launching;
    };
    const halt = async (signal: NodeJS.Signals) => {
      await launching?.catch(() => {}); // a failed launch has killed its etcd already
      const c = child;
      child = undefined;
      if (!c) return;
      const stopping = c.stop(signal);
      if (frozen) c.process.kill('SIGCONT'); // a stopped process acts on SIGTERM only once it runs again
      frozen = false;
      await stopping;
    };
    const signalFrozen = (want: boolean) => {
      if (child && frozen !== want) {
        child.process.kill(want ? 'SIGSTOP' : 'SIGCONT');
        frozen = want;
      }
    };
    const member: EtcdMemberHandle = {
      name: spec.name,
      endpoint: spec.clientUrl,
      kill: () => halt('SIGKILL'),
      halt: () => halt('SIGTERM'),
      start: () => launch(() => ctl(['endpoint', 'health'], [spec.clientUrl])),
      freeze: () => signalFrozen(true),
      thaw: () => signalFrozen(false),
    };
    return { member, launch, halt };
  });

  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await Promise.allSettled(members.map((m) => m.halt('SIGTERM')));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    // Members wait for each other (quorum) before serving: start all, then wait for the cluster's health. Every
    // launch ends before a failure is reported, so the stop below halts each member that came up.
    const launched = await Promise.allSettled(members.map((m) => m.launch(async () => true)));
    const failed = launched.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    await waitFor(
      `etcd cluster ${all.join(',')} healthy`,
      async () => Boolean(await ctl(['endpoint', 'health'])),
      ETCD_READY_TIMEOUT_MS,
      100,
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return { endpoints: all, members: members.map((m) => m.member), etcdctl: ctl, stop };
}
