/**
 * Test helper: an FRR router (zebra + bgpd, FRR 8.4 from Debian) in a fresh network namespace, started the way
 * platform-facts describes (no systemd, no watchfrr), with a vtysh query helper and cleanup that always runs.
 *
 *   const router = await startFrr({ asn: 65000, routerId: '100.64.0.2', neighbors: [...], maximumPaths: 8 });
 *   try {
 *     const link = await router.linkToHost({ routerAddress: '100.64.0.2/29', hostAddresses: ['100.64.0.1/29'] });
 *     await router.vtyshJson('show bgp summary json');
 *     await router.kernelRoute('198.51.100.10/32');      // { nexthops: ['100.64.0.1', ...] }
 *   } finally {
 *     await router.stop();                                // kills the daemons, deletes the namespace and its veths
 *   }
 *
 * The daemons run in the foreground as our children (so their pids are ours to kill), drop privileges to frr,
 * and keep their config, pid files, zserv and vty sockets in one temp dir owned by frr.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

export const FRR_DAEMON_DIR = '/usr/lib/frr';
const START_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 5_000;
const COMMAND_TIMEOUT_MS = 10_000;

const exec = promisify(execFile);

/** Runs a command (argv, no shell) and returns stdout; throws with stderr on failure. */
export async function sh(argv: readonly string[]): Promise<string> {
  const [cmd, ...args] = argv as [string, ...string[]];
  try {
    const { stdout } = await exec(cmd, args, { timeout: COMMAND_TIMEOUT_MS });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${argv.join(' ')} failed: ${e.stderr?.trim() || e.message}`, { cause: err });
  }
}

export interface FrrNeighbor {
  address: string;
  asn: number;
  /** TCP MD5 password (RFC 2385). */
  password?: string;
  /** Default 1 s / 3 s, like the node side. */
  keepaliveS?: number;
  holdTimeS?: number;
}

export interface FrrOptions {
  asn: number;
  routerId: string;
  neighbors: readonly FrrNeighbor[];
  /** `maximum-paths` for eBGP in both unicast families: ECMP width; default 8. */
  maximumPaths?: number;
  /**
   * Writes the RFC 8326 §4.2 receiver policy explicitly: routes carrying GRACEFUL_SHUTDOWN (65535:0) get
   * LOCAL_PREF 0, so a draining node leaves the ECMP group while its path stays as a backup. FRR 8.4 already
   * does this for received routes without any config (measured: packages/bgp/src/frr.int.test.ts); the explicit
   * route-map documents the intent and is what other routers need. Default false.
   */
  gracefulShutdownPolicy?: boolean;
  /** Lines added inside `router bgp` (before the address families). */
  extraBgpConfig?: readonly string[];
  /** Namespace name; default `l4frr-<random>`. At most 15 characters keep derived veth names legal. */
  namespace?: string;
}

export interface HostLink {
  /** veth end in the host namespace. */
  hostIf: string;
  /** veth end in the router namespace. */
  routerIf: string;
}

export interface KernelRoute {
  /** Gateways of the installed route, sorted; one entry for a single-path route. */
  nexthops: string[];
  /** Nexthop group id when FRR installed the route through one (FRR 8.4 does). */
  nhid: number | undefined;
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

/** The bgpd.conf for `opts`. Exported so the lab can reuse and tests can assert it. */
export function frrBgpdConfig(opts: FrrOptions): string {
  const maximumPaths = opts.maximumPaths ?? 8;
  const gshut = opts.gracefulShutdownPolicy === true;
  const lines = ['frr defaults traditional', 'log stdout informational', '!'];
  if (gshut) {
    lines.push(
      'bgp community-list standard GSHUT permit graceful-shutdown',
      'route-map NODES-IN permit 10',
      ' match community GSHUT',
      ' set local-preference 0',
      'route-map NODES-IN permit 20',
      '!',
    );
  }
  lines.push(
    `router bgp ${opts.asn}`,
    ` bgp router-id ${opts.routerId}`,
    // FRR 8.4 refuses every eBGP route without a policy unless told otherwise (RFC 8212).
    ' no bgp ebgp-requires-policy',
    ...(opts.extraBgpConfig ?? []).map((l) => ` ${l}`),
  );
  for (const n of opts.neighbors) {
    lines.push(` neighbor ${n.address} remote-as ${n.asn}`);
    lines.push(` neighbor ${n.address} timers ${n.keepaliveS ?? 1} ${n.holdTimeS ?? 3}`);
    // Retry the TCP connection every second (default 120 s), so sessions come up as soon as the node listens.
    lines.push(` neighbor ${n.address} timers connect 1`);
    if (n.password) lines.push(` neighbor ${n.address} password ${n.password}`);
  }
  for (const af of ['ipv4', 'ipv6']) {
    lines.push(' !', ` address-family ${af} unicast`, `  maximum-paths ${maximumPaths}`);
    for (const n of opts.neighbors) {
      if (af === 'ipv6') lines.push(`  neighbor ${n.address} activate`);
      if (gshut) lines.push(`  neighbor ${n.address} route-map NODES-IN in`);
    }
    lines.push(' exit-address-family');
  }
  lines.push('!', '');
  return lines.join('\n');
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  await exited(child);
  clearTimeout(timer);
}

export async function startFrr(opts: FrrOptions): Promise<FrrRouter> {
  const namespace = opts.namespace ?? `l4frr-${randomBytes(3).toString('hex')}`;
  const dir = await mkdtemp(join(tmpdir(), `l4fleet-${namespace}-`));
  const vtyDir = join(dir, 'vty');
  const children: ChildProcess[] = [];
  const logs: string[] = [];
  let namespaceCreated = false;
  let stopped = false;

  const inNs = (argv: readonly string[]) => sh(['ip', 'netns', 'exec', namespace, ...argv]);

  const router: FrrRouter = {
    namespace,
    dir,
    vtysh: (command) => inNs(['vtysh', '--vty_socket', vtyDir, '-c', command]),
    async vtyshJson<T>(command: string) {
      const out = await router.vtysh(command);
      return JSON.parse(out.trim() === '' ? '{}' : out) as T;
    },
    async neighborStates() {
      type Summary = Record<string, { peers?: Record<string, { state?: string }> }>;
      const summary = await router.vtyshJson<Summary>('show bgp summary json');
      const out: Record<string, string> = {};
      for (const af of Object.values(summary)) {
        for (const [address, p] of Object.entries(af.peers ?? {})) out[address] = p.state ?? 'Unknown';
      }
      for (const n of opts.neighbors) out[n.address] ??= 'Unknown';
      return out;
    },
    async kernelRoute(prefix) {
      const family = prefix.includes(':') ? '-6' : '-4';
      const routes = JSON.parse(
        (await sh(['ip', '-n', namespace, family, '-j', 'route', 'show', prefix])) || '[]',
      ) as Array<{ dst: string; gateway?: string; nhid?: number; nexthops?: Array<{ gateway?: string }> }>;
      const route = routes[0];
      if (!route) return undefined;
      let nexthops = (route.nexthops ?? []).map((n) => String(n.gateway));
      if (nexthops.length === 0 && route.gateway) nexthops = [route.gateway];
      return { nexthops: nexthops.sort(), nhid: route.nhid };
    },
    async linkToHost({ routerAddress, hostAddresses }) {
      const tag = randomBytes(3).toString('hex');
      const hostIf = `l4h${tag}`;
      const routerIf = `l4r${tag}`;
      await sh(['ip', 'link', 'add', hostIf, 'type', 'veth', 'peer', 'name', routerIf, 'netns', namespace]);
      for (const a of hostAddresses) await sh(['ip', 'addr', 'add', a, 'dev', hostIf]);
      await sh(['ip', 'link', 'set', hostIf, 'up']);
      await sh(['ip', '-n', namespace, 'addr', 'add', routerAddress, 'dev', routerIf]);
      await sh(['ip', '-n', namespace, 'link', 'set', routerIf, 'up']);
      return { hostIf, routerIf };
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      // bgpd first: a clean NOTIFICATION to the neighbours, then zebra removes its routes.
      for (const child of [...children].reverse()) await stopChild(child);
      if (namespaceCreated) await sh(['ip', 'netns', 'delete', namespace]).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };

  try {
    await sh(['ip', 'netns', 'add', namespace]);
    namespaceCreated = true;
    await sh(['ip', '-n', namespace, 'link', 'set', 'lo', 'up']);
    // Router sysctls for per-flow ECMP (platform-facts): forward, hash on L4 ports, no reverse-path filter.
    for (const s of [
      'net.ipv4.ip_forward=1',
      'net.ipv4.fib_multipath_hash_policy=1',
      'net.ipv4.conf.all.rp_filter=0',
      'net.ipv4.conf.default.rp_filter=0',
      'net.ipv6.conf.all.forwarding=1',
    ]) {
      await inNs(['sysctl', '-q', '-w', s]);
    }

    await sh(['mkdir', '-p', vtyDir]);
    await writeFile(join(dir, 'zebra.conf'), 'log stdout informational\n');
    await writeFile(join(dir, 'bgpd.conf'), frrBgpdConfig(opts));
    await sh(['chown', '-R', 'frr:frr', dir]);
    await chmod(dir, 0o755);

    for (const daemon of ['zebra', 'bgpd'] as const) {
      const argv = [
        'netns',
        'exec',
        namespace,
        join(FRR_DAEMON_DIR, daemon),
        '-u',
        'frr',
        '-g',
        'frr',
        '-f',
        join(dir, `${daemon}.conf`),
        '-i',
        join(dir, `${daemon}.pid`),
        '-z',
        join(dir, 'zserv.api'),
        '--vty_socket',
        vtyDir,
        '-A',
        '127.0.0.1',
      ];
      // `ip netns exec` execs the daemon, so the child's pid is the daemon's.
      const child = spawn('ip', argv, { stdio: ['ignore', 'pipe', 'pipe'] });
      child.stdout?.on('data', (b: Buffer) => logs.push(b.toString()));
      child.stderr?.on('data', (b: Buffer) => logs.push(b.toString()));
      children.push(child);
    }

    const deadline = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      const dead = children.find((c) => c.exitCode !== null);
      if (dead) throw new Error(`FRR daemon exited with ${dead.exitCode}: ${logs.join('').slice(-2000)}`);
      const ok = await router
        .vtyshJson<Record<string, unknown>>('show bgp summary json')
        .then(() => router.vtysh('show zebra client summary'))
        .then(
          (out) => out.includes('bgp'),
          () => false,
        );
      if (ok) break;
      if (Date.now() > deadline)
        throw new Error(`FRR not ready after ${START_TIMEOUT_MS} ms: ${logs.join('').slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    return router;
  } catch (err) {
    await router.stop();
    throw err;
  }
}
