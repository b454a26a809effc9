/**
 * Throughput (iperf3, one TCP stream, client -> backend) and new TCP connections per second (conn-rate.c:
 * connect, 16 bytes there and back, close) from the bench's client through one node, per path:
 *   direct      client -> the backend's own address (no balancer; the reference of every ratio);
 *   nftables    the nftables driver, l2 DSR (dataplane.bench.ts sets it up);
 *   nftables-nat the nftables driver, `forwarding: nat` with port translation (VIP :5211 -> member :5201):
 *               DNAT and SNAT in conntrack on the node, so replies come back through it (design note 0012);
 *   haproxy     Debian's HAProxy in TCP mode on the node (the classic proxy baseline; replies pass it too);
 *   proxy       the userspace proxy driver on the node;
 *   bpf-l2      the bpf driver, l2 DSR;
 *   bpf-gue     the bpf driver, GUE to a backend set up as `l4fleet backend setup` does (decap at tc ingress);
 *   bpf-ipip    the same with IPIP.
 * Replies go from the backend straight to the client in every DSR path (l2, gue, ipip); HAProxy, the proxy and
 * NAT carry them too.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildTable } from '@l4fleet/maglev';
import { run } from '@l4fleet/process';
import { pino } from 'pino';
import type { NetnsHost } from '../../../test/support/netns.js';
import {
  type BpfDataPlane,
  createBpfDataPlane,
  createExec,
  type Forwarding,
  setupBackend,
  teardownBackend,
  type VipTable,
} from '../src/index.js';
import { ARTIFACTS } from './bpf.js';

export const IPERF_S = Number(process.env.BENCH_IPERF_S ?? 3);
export const CPS_S = Number(process.env.BENCH_CPS_S ?? 2);
/** Client and server processes of conn-rate (one per core: the client must not be the bottleneck alone). */
export const CPS_WORKERS = 2;
export const IPERF_PORT = 5201;
export const CPS_PORT = 5301;
const logger = pino({ level: 'silent' });

export const PATHS = [
  'direct',
  'nftables',
  'nftables-nat',
  'haproxy',
  'proxy',
  'bpf-l2',
  'bpf-gue',
  'bpf-ipip',
] as const;
export type PathName = (typeof PATHS)[number];
/** Figure names: `${key}Gbps`, `${key}Cps`, `${key}VsDirectThroughput`, `${key}VsDirectCps`. */
export const pathKey = (p: PathName): string => p.replace(/-(\w)/, (_m, c: string) => c.toUpperCase());

/** Spawns `argv` in `h` and resolves when it prints "ready" or iperf3's "Server listening" (15 s at most). */
export async function ready(h: NetnsHost, argv: string[]): Promise<void> {
  const child = h.spawn(argv);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${argv[0]} not ready within 15 s`)), 15_000);
    child.stdout?.on('data', (d: Buffer) => {
      if (/ready|Server listening/.test(d.toString())) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${argv.join(' ')} exited ${code}`));
    });
  });
}

/** Compiles conn-rate.c into `dir`; returns the binary's path. */
export async function buildConnRate(dir: string): Promise<string> {
  const bin = join(dir, 'conn-rate');
  await run(['gcc', '-O2', '-Wall', '-o', bin, fileURLToPath(new URL('./conn-rate.c', import.meta.url))]);
  return bin;
}

async function iperf(client: NetnsHost, host: string, port: number): Promise<number> {
  const r = await client.run(['iperf3', '-c', host, '-p', String(port), '-t', String(IPERF_S), '-J'], {
    timeoutMs: (IPERF_S + 15) * 1000,
    allowFailure: true,
  });
  const out = JSON.parse(r.stdout || '{}') as {
    error?: string;
    end?: { sum_received?: { bits_per_second: number } };
  };
  const bps = out.end?.sum_received?.bits_per_second;
  if (bps === undefined) throw new Error(`iperf3 to ${host}:${port}: ${out.error ?? r.stderr.slice(0, 300)}`);
  return bps;
}

async function cps(client: NetnsHost, bin: string, host: string, port: number): Promise<number> {
  const r = await client.run([bin, 'client', host, String(port), String(CPS_S), String(CPS_WORKERS)], {
    timeoutMs: (CPS_S + 15) * 1000,
  });
  const out = JSON.parse(r.stdout) as { connections: number; failed: number; perSecond: number };
  if (out.failed > out.connections * 0.01) {
    throw new Error(`conn-rate to ${host}:${port}: ${out.failed} failed of ${out.connections + out.failed}`);
  }
  return out.perSecond;
}

/** Measures one path into `figures` (`${key}Gbps`, `${key}Cps`). */
export async function measurePath(
  figures: Record<string, number>,
  client: NetnsHost,
  connRate: string,
  path: PathName,
  host: string,
  ports: { iperf: number; cps: number } = { iperf: IPERF_PORT, cps: CPS_PORT },
): Promise<void> {
  const k = pathKey(path);
  figures[`${k}Gbps`] = (await iperf(client, host, ports.iperf)) / 1e9;
  figures[`${k}Cps`] = await cps(client, connRate, host, ports.cps);
}

export interface BpfPathsSetup {
  readonly client: NetnsHost;
  readonly node: NetnsHost;
  readonly backend: NetnsHost;
  readonly connRate: string;
  readonly vip: string;
  readonly nodeAddress: string;
  readonly backendAddress: string;
  readonly dir: string;
}

/**
 * The bpf driver's paths: l2, then gue and ipip to a backend set up by setupBackend (the code of
 * `l4fleet backend setup`), torn down again after. Pins in bpffs mounts of its own, removed at the end.
 */
export async function measureBpfPaths(s: BpfPathsSetup): Promise<Record<string, number>> {
  const figures: Record<string, number> = {};
  const nodeFs = `/run/l4fleet-bench-paths-${process.pid}`;
  const backendFs = `${nodeFs}-backend`;
  for (const d of [nodeFs, backendFs]) {
    mkdirSync(d, { recursive: true });
    spawnSync('mount', ['-t', 'bpf', 'bpf', d]);
  }
  const deps = { exec: createExec(s.backend.ns), bpffs: backendFs, stateDir: join(s.dir, 'backend-state') };
  let dp: BpfDataPlane | undefined;
  let backendSetUp = false;
  const tables = (forwarding: Forwarding): VipTable[] =>
    [IPERF_PORT, CPS_PORT].map((port) => {
      const backends = [{ name: 'be', address: s.backendAddress, port }];
      return {
        vip: { address: s.vip, port, protocol: 'tcp' },
        hash: '5-tuple',
        seed: 7,
        backends,
        slots: buildTable(backends),
        forwarding,
      };
    });
  try {
    dp = createBpfDataPlane({
      interface: 'eth0',
      netns: s.node.ns,
      nodeAddresses: [s.nodeAddress],
      bpffsPath: nodeFs,
      logger,
      ...ARTIFACTS,
    });
    for (const fwd of ['l2', 'gue', 'ipip'] as const) {
      if (fwd !== 'l2' && !backendSetUp) {
        await setupBackend(
          { vips: [s.vip], forwarding: ['gue', 'ipip'], nodes: [s.nodeAddress], interface: 'eth0' },
          deps,
        );
        backendSetUp = true;
      }
      await dp.apply(tables(fwd));
      await measurePath(figures, s.client, s.connRate, `bpf-${fwd}`, s.vip);
    }
    const c = await dp.counters();
    const drops = Object.entries(c.drops).filter(([, t]) => t.packets > 0);
    if (drops.length > 0) {
      figures.bpfPathDrops = drops.reduce((n, [, t]) => n + t.packets, 0);
      console.error(`bpf paths: drops ${drops.map(([k, t]) => `${k} ${t.packets}`).join(', ')}`);
    }
  } finally {
    if (backendSetUp) await teardownBackend(deps).catch((e) => console.error('backend teardown:', e));
    await dp?.close({ removeState: true }).catch((e) => console.error('bpf paths close:', e));
    for (const d of [nodeFs, backendFs]) {
      spawnSync('umount', [d]);
      spawnSync('rmdir', [d]);
    }
  }
  return figures;
}

/** Ratios to direct; call with every measured path in `figures`. */
export function addRatios(figures: Record<string, number>): void {
  for (const p of PATHS) {
    const k = pathKey(p);
    if (p === 'direct' || figures[`${k}Gbps`] === undefined) continue;
    figures[`${k}VsDirectThroughput`] = (figures[`${k}Gbps`] as number) / (figures.directGbps as number);
    figures[`${k}VsDirectCps`] = (figures[`${k}Cps`] as number) / (figures.directCps as number);
  }
}

export function pathsReport(figures: Record<string, number>): string[] {
  const rows = [['path', 'iperf3 Gbit/s', 'x direct', 'new conn/s', 'x direct']];
  for (const p of PATHS) {
    const k = pathKey(p);
    if (figures[`${k}Gbps`] === undefined) continue;
    rows.push([
      p,
      (figures[`${k}Gbps`] as number).toFixed(2),
      p === 'direct' ? '1.00' : (figures[`${k}VsDirectThroughput`] as number).toFixed(2),
      (figures[`${k}Cps`] as number).toFixed(0),
      p === 'direct' ? '1.00' : (figures[`${k}VsDirectCps`] as number).toFixed(2),
    ]);
  }
  return rows.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(13) : c.padStart(14))).join(''));
}
