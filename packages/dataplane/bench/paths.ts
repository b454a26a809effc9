/**
 * Throughput (iperf3, one TCP stream, client -> backend) and new TCP connections per second (conn-rate.c:
 * connect, 16 bytes there and back, close) from the bench's client through one node, per path:
 *   direct      client -> the backend's own address (no balancer; the reference of every ratio);
 *   nftables    the nftables driver, l2 DSR (dataplane.bench.ts sets it up);
 *   nftables-nat the nftables driver, `forwarding: nat` with port translation (VIP :5211 -> member :5201):
 *               DNAT and SNAT in conntrack on the node, so replies come back through it (design note 0012);
 *   haproxy     Debian's HAProxy in TCP mode on the node (the classic proxy baseline; replies pass it too);
 *   proxy       the userspace proxy driver on the node;
 *   node-fwd    no l4fleet: a bare nftables `fwd` through the node, the hop every balancer path pays and direct
 *               does not (dataplane.bench.ts measureNodeHop);
 *   bpf-l2      the bpf driver, l2 DSR;
 *   bpf-gue     the bpf driver, GUE to a backend set up as `l4fleet backend setup` does (decap at tc ingress);
 *   bpf-ipip    the same with IPIP.
 * Replies go from the backend straight to the client in every DSR path (l2, gue, ipip); HAProxy, the proxy and
 * NAT carry them too.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { loadavg } from 'node:os';
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
import { ARTIFACTS } from './bpf-apply.js';
import { median, quantile } from './flood.js';
import { setSysctl } from './interrupt.js';

/**
 * Short samples, many rounds: a pair (direct, path) a few seconds apart sees about the same share of a shared
 * machine; at load 3-12 the rounds of 3 s + 2 s samples still moved a ratio by 0.3-0.7 (see PathRunner).
 */
export const IPERF_S = Number(process.env.BENCH_IPERF_S ?? 2);
export const CPS_S = Number(process.env.BENCH_CPS_S ?? 1);
/** Paired rounds per path (direct and the path alternating, see PathRunner). */
export const PATHS_ROUNDS = Number(process.env.BENCH_PATHS_ROUNDS ?? 5);
/** BENCH_PATHS=bpf-l2,nftables measures only those paths (direct always, as the reference). */
const PATHS_ONLY = new Set((process.env.BENCH_PATHS ?? '').split(',').filter(Boolean));
/**
 * BENCH_PATHS_PERF=DIR: after a path's rounds, one more iperf3 run under `perf record -a -e cpu-clock` (all CPUs:
 * the path's work spreads over the sender's softirq and the receiver's CPU), kept as DIR/<path>.data for
 * `perf report -i` (diagnosis only; no figures).
 */
const PERF_DIR = process.env.BENCH_PATHS_PERF;
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
  'node-fwd',
  'bpf-l2',
  'bpf-gue',
  'bpf-ipip',
] as const;
export type PathName = (typeof PATHS)[number];
for (const p of PATHS_ONLY) {
  if (!(PATHS as readonly string[]).includes(p))
    throw new Error(`BENCH_PATHS: "${p}" is not one of ${PATHS.join(', ')}`);
}
export const pathSelected = (p: PathName): boolean => p === 'direct' || PATHS_ONLY.size === 0 || PATHS_ONLY.has(p);
/**
 * Figure names: `${key}Gbps`, `${key}CpuNsPerKiB`, `${key}Cps` (medians over the rounds) and the same with
 * `${key}Direct...` (direct's median in that path's rounds); `${key}VsDirectThroughput`, `${key}VsDirectCpuPerByte`,
 * `${key}VsDirectCps` (median of the rounds' paired ratios) with `Min` / `Max` of those ratios; `${key}LoadAverage`
 * (the 1-minute load average over the path's rounds); bpf modes `${key}ProgRuns`, `${key}ProgNsPerRun`,
 * `${key}ProgCpuShare` (bpf_stats); `pathsRounds`.
 */
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

/**
 * bits/s, and CPU ns per KiB received: iperf3's own CPU time at both ends (getrusage; the kernel here has no
 * IRQ time accounting, so the softirq work each side's syscalls run, the whole veth chain included, is charged to
 * them) over the bytes. Work deferred to ksoftirqd is not in it (nor a proxy's own CPU). It depends less on how much
 * of the machine the run got than Gbit/s does (paired ratios within +-0.15 at load 10-16, against 0.3-0.7 for Gbit/s).
 */
async function iperf(client: NetnsHost, host: string, port: number): Promise<{ bps: number; cpuNsPerKiB: number }> {
  const r = await client.run(['iperf3', '-c', host, '-p', String(port), '-t', String(IPERF_S), '-J'], {
    timeoutMs: (IPERF_S + 15) * 1000,
    allowFailure: true,
  });
  const out = JSON.parse(r.stdout || '{}') as {
    error?: string;
    end?: {
      sum_received?: { bits_per_second: number; bytes: number; seconds: number };
      cpu_utilization_percent?: { host_total: number; remote_total: number };
    };
  };
  const rx = out.end?.sum_received;
  const cpu = out.end?.cpu_utilization_percent;
  if (rx === undefined || cpu === undefined) {
    throw new Error(`iperf3 to ${host}:${port}: ${out.error ?? r.stderr.slice(0, 300)}`);
  }
  const cpuNs = ((cpu.host_total + cpu.remote_total) / 100) * rx.seconds * 1e9;
  return { bps: rx.bits_per_second, cpuNsPerKiB: cpuNs / (rx.bytes / 1024) };
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

/** Where a path's traffic goes: the VIP (or the proxy's address) and its iperf3 / conn-rate ports. */
export interface PathTarget {
  readonly host: string;
  readonly ports?: { readonly iperf: number; readonly cps: number };
}

/**
 * Measures paths in rounds, each against direct: round r runs iperf3 to direct and to the path back to back
 * (direct first in even rounds, the path first in odd ones), then conn-rate the same way, and the round's
 * ratio is path / direct of that pair. On a shared 2-core machine the CPU a run gets drifts over seconds, so
 * only such pairs compare; one sample per path (the bench until issue 14) moved ratios by 0.1 between runs.
 */
export interface PathRunner {
  /** Measures `path` (PATHS_ROUNDS paired rounds) unless BENCH_PATHS leaves it out. */
  measure(path: PathName, target: PathTarget): Promise<void>;
  /** Medians, ratios, spreads and load averages of everything measured so far (keys: see pathKey). */
  figures(): Record<string, number>;
}

/** One measure: Gbit/s, iperf3's CPU ns per KiB (see iperf), connections/s. */
interface Sample {
  gbps: number;
  cpuNsPerKiB: number;
  cps: number;
}
type Metric = keyof Sample;
const METRICS: readonly Metric[] = ['gbps', 'cpuNsPerKiB', 'cps'];
/** Figure names per metric: the value's suffix and the ratio's (ratio keys predate issue 14's rounds). */
const NAMES: Record<Metric, { value: string; ratio: string }> = {
  gbps: { value: 'Gbps', ratio: 'Throughput' },
  cpuNsPerKiB: { value: 'CpuNsPerKiB', ratio: 'CpuPerByte' },
  cps: { value: 'Cps', ratio: 'Cps' },
};

export function createPathRunner(s: {
  readonly client: NetnsHost;
  readonly connRate: string;
  readonly direct: string;
  readonly rounds?: number;
}): PathRunner {
  const rounds = s.rounds ?? PATHS_ROUNDS;
  const allDirect: Sample[] = [];
  const measured = new Map<PathName, { path: Sample[]; direct: Sample[]; load: number[] }>();
  const stream = (t: PathTarget): Promise<{ bps: number; cpuNsPerKiB: number }> =>
    iperf(s.client, t.host, t.ports?.iperf ?? IPERF_PORT);
  const conns = (t: PathTarget): Promise<number> => cps(s.client, s.connRate, t.host, t.ports?.cps ?? CPS_PORT);
  const profile = async (path: PathName, target: PathTarget, dir: string): Promise<void> => {
    mkdirSync(dir, { recursive: true });
    const rec = run(
      ['perf', 'record', '-q', '-a', '-g', '-e', 'cpu-clock', '-F', '1999', '-o', join(dir, `${path}.data`)].concat([
        '--',
        'sleep',
        String(IPERF_S),
      ]),
      { timeoutMs: (IPERF_S + 30) * 1000 },
    );
    await stream(target);
    await rec;
  };
  return {
    async measure(path, target) {
      if (!pathSelected(path)) return;
      const m = { path: [] as Sample[], direct: [] as Sample[], load: [] as number[] };
      const d: PathTarget = { host: s.direct };
      for (let r = 0; r < rounds; r++) {
        m.load.push(loadavg()[0] as number);
        const order = path === 'direct' ? [d] : r % 2 === 0 ? [d, target] : [target, d];
        const it: { bps: number; cpuNsPerKiB: number }[] = [];
        for (const t of order) it.push(await stream(t));
        const c: number[] = [];
        for (const t of order) c.push(await conns(t));
        const at = (i: number): Sample => ({
          gbps: (it[i]?.bps as number) / 1e9,
          cpuNsPerKiB: it[i]?.cpuNsPerKiB as number,
          cps: c[i] as number,
        });
        const di = order[0] === d ? 0 : 1;
        allDirect.push(at(di));
        m.direct.push(at(di));
        if (path !== 'direct') m.path.push(at(1 - di));
      }
      m.load.push(loadavg()[0] as number);
      measured.set(path, m);
      if (PERF_DIR !== undefined) await profile(path, target, PERF_DIR);
    },
    figures() {
      const f: Record<string, number> = { pathsRounds: rounds };
      if (allDirect.length === 0) return f;
      for (const x of METRICS) f[`direct${NAMES[x].value}`] = median(allDirect.map((v) => v[x]));
      f.directGbpsMin = quantile(
        allDirect.map((v) => v.gbps),
        0,
      );
      f.directGbpsMax = quantile(
        allDirect.map((v) => v.gbps),
        1,
      );
      for (const [path, m] of measured) {
        const k = pathKey(path);
        f[`${k}LoadAverage`] = m.load.reduce((a, b) => a + b, 0) / m.load.length;
        if (path === 'direct') continue;
        for (const x of METRICS) {
          const { value, ratio } = NAMES[x];
          const ratios = m.path.map((v, i) => v[x] / (m.direct[i] as Sample)[x]);
          f[`${k}${value}`] = median(m.path.map((v) => v[x]));
          f[`${k}Direct${value}`] = median(m.direct.map((v) => v[x]));
          f[`${k}VsDirect${ratio}`] = median(ratios);
          f[`${k}VsDirect${ratio}Min`] = quantile(ratios, 0);
          f[`${k}VsDirect${ratio}Max`] = quantile(ratios, 1);
        }
      }
      return f;
    },
  };
}

export interface BpfPathsSetup {
  readonly runner: PathRunner;
  readonly node: NetnsHost;
  readonly backend: NetnsHost;
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
  // The program's own run time over each mode's rounds (both iperf3 and conn-rate traffic): its share of one CPU
  // says how much of a throughput difference the program itself can explain.
  const restoreStats = setSysctl('kernel.bpf_stats_enabled', '1');
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
      if (!pathSelected(`bpf-${fwd}`)) continue;
      if (fwd !== 'l2' && !backendSetUp) {
        await setupBackend(
          { vips: [s.vip], forwarding: ['gue', 'ipip'], nodes: [s.nodeAddress], interface: 'eth0' },
          deps,
        );
        backendSetUp = true;
      }
      await dp.apply(tables(fwd));
      const before = await dp.programStats();
      const t0 = process.hrtime.bigint();
      await s.runner.measure(`bpf-${fwd}`, { host: s.vip });
      const wallNs = Number(process.hrtime.bigint() - t0);
      const after = await dp.programStats();
      const k = pathKey(`bpf-${fwd}`);
      const runs = after.runCount - before.runCount;
      figures[`${k}ProgRuns`] = runs;
      figures[`${k}ProgNsPerRun`] = runs > 0 ? (after.runTimeNs - before.runTimeNs) / runs : 0;
      figures[`${k}ProgCpuShare`] = (after.runTimeNs - before.runTimeNs) / wallNs;
    }
    const c = await dp.counters();
    const drops = Object.entries(c.drops).filter(([, t]) => t.packets > 0);
    if (drops.length > 0) {
      figures.bpfPathDrops = drops.reduce((n, [, t]) => n + t.packets, 0);
      console.error(`bpf paths: drops ${drops.map(([k, t]) => `${k} ${t.packets}`).join(', ')}`);
    }
  } finally {
    restoreStats();
    if (backendSetUp) await teardownBackend(deps).catch((e) => console.error('backend teardown:', e));
    await dp?.close({ removeState: true }).catch((e) => console.error('bpf paths close:', e));
    for (const d of [nodeFs, backendFs]) {
      spawnSync('umount', [d]);
      spawnSync('rmdir', [d]);
    }
  }
  return figures;
}

const ratio = (f: Record<string, number>, k: string, what: string): string =>
  `${(f[`${k}VsDirect${what}`] as number).toFixed(2)} [${(f[`${k}VsDirect${what}Min`] as number).toFixed(2)}..${(
    f[`${k}VsDirect${what}Max`] as number
  ).toFixed(2)}]`;

export function pathsReport(figures: Record<string, number>): string[] {
  const rows = [
    ['path', 'Gbit/s (direct)', 'x direct [min..max]', 'CPU ns/KiB', 'x direct [min..max]'].concat([
      'conn/s (direct)',
      'x direct [min..max]',
      'load',
    ]),
  ];
  const beside = (k: string, unit: string, digits: number): string =>
    figures[`${k}Direct${unit}`] === undefined
      ? (figures[`${k}${unit}`] as number).toFixed(digits)
      : `${(figures[`${k}${unit}`] as number).toFixed(digits)} (${(figures[`${k}Direct${unit}`] as number).toFixed(digits)})`;
  for (const p of PATHS) {
    const k = pathKey(p);
    if (figures[`${k}Gbps`] === undefined) continue;
    const load = figures[`${k}LoadAverage`];
    rows.push([
      p,
      beside(k, 'Gbps', 2),
      p === 'direct' ? '1.00' : ratio(figures, k, 'Throughput'),
      beside(k, 'CpuNsPerKiB', 0),
      p === 'direct' ? '1.00' : ratio(figures, k, 'CpuPerByte'),
      beside(k, 'Cps', 0),
      p === 'direct' ? '1.00' : ratio(figures, k, 'Cps'),
      load === undefined ? '' : load.toFixed(1),
    ]);
  }
  const lines = rows.map((r) =>
    r.map((c, i) => (i === 0 ? c.padEnd(13) : c.padStart(i === 7 ? 6 : i === 3 ? 15 : 21))).join(''),
  );
  const prog = (['bpf-l2', 'bpf-gue', 'bpf-ipip'] as const)
    .map(pathKey)
    .filter((k) => figures[`${k}ProgRuns`] !== undefined)
    .map(
      (k) =>
        `${k} ${(figures[`${k}ProgRuns`] as number).toFixed(0)} runs, ${(figures[`${k}ProgNsPerRun`] as number).toFixed(0)} ns/run, ` +
        `${((figures[`${k}ProgCpuShare`] as number) * 100).toFixed(2)}% of one CPU`,
    );
  if (prog.length > 0) lines.push(`bpf program (bpf_stats, over each mode's rounds): ${prog.join('; ')}`);
  return lines;
}
