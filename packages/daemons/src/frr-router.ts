/**
 * An FRR router (zebra + bgpd) in a fresh network namespace, our children, with a vtysh query helper and cleanup
 * that always runs. For tests and benches; the lab starts the same daemons detached (lab/src/runtime).
 *
 *   const router = await startFrr({ asn: 65000, routerId: '198.18.0.2', neighbors: [...], maximumPaths: 8 });
 *   try {
 *     const link = await router.linkToHost({ routerAddress: '198.18.0.2/29', hostAddresses: ['198.18.0.1/29'] });
 *     await router.kernelRoute('198.51.100.10/32');      // { nexthops: ['198.18.0.1', ...] }
 *   } finally {
 *     await router.stop();                                // kills the daemons, deletes the namespace and its veths
 *   }
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Child, run, spawnChild, waitFor } from '@l4fleet/process';
import { type FrrOptions, frrDaemonArgv, prepareFrrDir } from './frr-config.js';
import { type KernelRoute, kernelRoute, parseBgpSummary, vtysh } from './frr-query.js';

const START_TIMEOUT_MS = 15_000;

/** Router sysctls for per-flow ECMP (platform-facts): forward, hash on L4 ports, no reverse-path filter. */
export const ROUTER_SYSCTLS: readonly string[] = [
  'net.ipv4.ip_forward=1',
  'net.ipv4.fib_multipath_hash_policy=1',
  'net.ipv4.conf.all.rp_filter=0',
  'net.ipv4.conf.default.rp_filter=0',
  'net.ipv6.conf.all.forwarding=1',
];

export interface FrrRouterOptions extends FrrOptions {
  /** Namespace name; default `l4frr-<random>`. At most 15 characters keep derived veth names legal. */
  readonly namespace?: string;
}

export interface HostLink {
  /** veth end in the host namespace. */
  readonly hostIf: string;
  /** veth end in the router namespace. */
  readonly routerIf: string;
}

export interface FrrRouter {
  readonly namespace: string;
  readonly dir: string;
  /** Runs one vtysh command in the router; returns its text output. */
  vtysh(command: string): Promise<string>;
  /** Runs a vtysh command that ends in `json` and parses it. */
  vtyshJson<T = unknown>(command: string): Promise<T>;
  /** Session state per neighbour address from `show bgp summary json` (e.g. 'Established', 'Active'). */
  neighborStates(): Promise<Record<string, string>>;
  /** The kernel's route for `prefix` in the router namespace, or undefined when there is none. */
  kernelRoute(prefix: string): Promise<KernelRoute | undefined>;
  /** A veth pair between the host namespace and the router, with addresses (CIDR) on both ends. */
  linkToHost(opts: { routerAddress: string; hostAddresses: readonly string[] }): Promise<HostLink>;
  /** Stops the daemons and deletes the namespace (and with it every veth end inside). Idempotent. */
  stop(): Promise<void>;
}

export async function startFrr(opts: FrrRouterOptions): Promise<FrrRouter> {
  const namespace = opts.namespace ?? `l4frr-${randomBytes(3).toString('hex')}`;
  const dir = await mkdtemp(join(tmpdir(), `l4fleet-${namespace}-`));
  const children: Child[] = [];
  let namespaceCreated = false;
  let stopped = false;
  const logs = () =>
    children
      .map((c) => c.log())
      .join('')
      .slice(-2000);
  const vtyDir = join(dir, 'vty');

  const router: FrrRouter = {
    namespace,
    dir,
    vtysh: (command) => vtysh(namespace, vtyDir, command),
    async vtyshJson<T>(command: string) {
      const out = await router.vtysh(command);
      return JSON.parse(out.trim() === '' ? '{}' : out) as T;
    },
    async neighborStates() {
      const out: Record<string, string> = {};
      for (const n of parseBgpSummary(await router.vtysh('show bgp summary json'))) out[n.address] = n.state;
      for (const n of opts.neighbors ?? []) out[n.address] ??= 'Unknown';
      return out;
    },
    kernelRoute: (prefix) => kernelRoute(namespace, prefix),
    async linkToHost({ routerAddress, hostAddresses }) {
      const tag = randomBytes(3).toString('hex');
      const hostIf = `l4h${tag}`;
      const routerIf = `l4r${tag}`;
      await run(['ip', 'link', 'add', hostIf, 'type', 'veth', 'peer', 'name', routerIf, 'netns', namespace]);
      for (const a of hostAddresses) await run(['ip', 'addr', 'add', a, 'dev', hostIf]);
      await run(['ip', 'link', 'set', hostIf, 'up']);
      await run(['ip', '-n', namespace, 'addr', 'add', routerAddress, 'dev', routerIf]);
      await run(['ip', '-n', namespace, 'link', 'set', routerIf, 'up']);
      return { hostIf, routerIf };
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      // bgpd first: a clean NOTIFICATION to the neighbours, then zebra removes its routes.
      for (const child of [...children].reverse()) await child.stop();
      if (namespaceCreated) await run(['ip', 'netns', 'delete', namespace], { allowFailure: true });
      await rm(dir, { recursive: true, force: true });
    },
  };

  try {
    await run(['ip', 'netns', 'add', namespace]);
    namespaceCreated = true;
    await run(['ip', '-n', namespace, 'link', 'set', 'lo', 'up']);
    for (const s of ROUTER_SYSCTLS) await run(['sysctl', '-q', '-w', s], { namespace });
    const paths = prepareFrrDir(dir, opts);
    const daemons = ['zebra', 'bgpd', ...(opts.bfdProfiles ? (['bfdd'] as const) : [])] as const;
    for (const daemon of daemons) {
      children.push(spawnChild(frrDaemonArgv(daemon, paths), { namespace }));
    }
    await waitFor(
      'FRR (bgpd connected to zebra)',
      async () => ((await router.vtysh('show zebra client summary')).includes('bgp') ? true : undefined),
      START_TIMEOUT_MS,
      200,
      () => {
        const dead = children.find((c) => c.exitReason() !== undefined);
        return dead ? `an FRR daemon ${dead.exitReason()}: ${logs()}` : undefined;
      },
    );
    return router;
  } catch (err) {
    await router.stop();
    throw err;
  }
}
