/**
 * The bpf driver's apply latency in the data-plane bench: at M = 65,537 with 100 backends (median of
 * BENCH_APPLY_RUNS, default 7), a full table (a new VIP on a running node, its seat ready; and right after the
 * start, before the seat is: NoSeat), 100 new VIPs at M = 4,099 in one apply, a 16,384-slot delta, and a
 * restart with nothing to change (a new driver: loader start over the pins, reading the maps back, planning:
 * nothing sent).
 */
import { spawnSync } from 'node:child_process';
import { buildTable } from '@l4fleet/maglev';
import { run } from '@l4fleet/process';
import { pino } from 'pino';
import { type BpfDataPlane, createBpfDataPlane, type VipTable } from '../src/index.js';
import { median } from './flood.js';
import { benchLab } from './interrupt.js';

const logger = pino({ level: 'silent' });
/** The bench's bpffs mounts start with this (per-packet: as is; apply: `-apply`). */
export const BPFFS = `/run/l4fleet-bench-bpf-${process.pid}`;
/**
 * BENCH_BPF_LOADER / BENCH_BPF_OBJECT: another l4fleet-bpf / node.bpf.o than the package build's (to compare a
 * change to the program or the loader in one run of the same bench).
 */
export const ARTIFACTS = {
  ...(process.env.BENCH_BPF_LOADER ? { loaderPath: process.env.BENCH_BPF_LOADER } : {}),
  ...(process.env.BENCH_BPF_OBJECT ? { objectPath: process.env.BENCH_BPF_OBJECT } : {}),
};
/** The restarts' `programLoaded` events (bpfApplyLatency): which start path the loader took. */
const starts: string[] = [];
const startLogger = pino(
  { level: 'info' },
  {
    write(line: string) {
      const e = JSON.parse(line) as { event?: string; from?: string };
      if (e.event === 'programLoaded') starts.push(e.from ?? '');
    },
  },
);

/** Rounds of the apply latency figures (each: full table, delta, restart). */
export const APPLY_RUNS = Number(process.env.BENCH_APPLY_RUNS ?? 7);

/** This process's CPU time in ms (all its threads: JavaScript, GC, compiler). */
const cpuMs = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

/** Wall time and this process's CPU time of `fn` (the loader's own time is in the wall time only). */
async function timed<T>(fn: () => Promise<T>): Promise<{ r: T; wall: number; cpu: number }> {
  const c = cpuMs();
  const t = performance.now();
  const r = await fn();
  return { r, wall: performance.now() - t, cpu: cpuMs() - c };
}

/**
 * Apply latency of the bpf driver at M = 65,537 with 100 backends (median and minimum of APPLY_RUNS):
 * wall time (what the agent waits), and how much of it was this process on a CPU (planning, encoding,
 * decoding; the rest is the loader, the kernel, process start, and waiting for a CPU on a loaded machine).
 * The loader joins the bench's node namespace itself (--netns); bpfNsenterSpawnMs is what `nsenter --net`
 * alone costs, which a restart paid before that. bpfRestartFromPins: the share of restarts that took the
 * loader's fast path (1 = all: the pins opened by path, the object never parsed).
 */
export async function bpfApplyLatency(): Promise<Record<string, number>> {
  const lab = await benchLab('l4bb');
  const bpffs = `${BPFFS}-apply`;
  type Sample = { wall: number; cpu: number };
  const times = {
    cold: [] as Sample[],
    many: [] as Sample[],
    full: [] as Sample[],
    delta: [] as Sample[],
    restart: [] as Sample[],
    nsenter: [] as number[],
  };
  try {
    const h = await lab.host('lat');
    await h.run(['ip', 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth1']);
    await h.run(['ip', 'link', 'set', 'eth0', 'up']);
    const names = Array.from({ length: 100 }, (_x, i) => ({
      name: `m${i}`,
      address: `198.18.${200 + (i >> 8)}.${i & 255}`,
      port: 80,
    }));
    const full: VipTable = {
      vip: { address: '198.51.100.1', port: 80, protocol: 'tcp' },
      hash: '5-tuple',
      seed: 1,
      backends: names,
      slots: buildTable(names, 65_537),
    };
    const hundred: VipTable[] = Array.from({ length: 100 }, (_x, v) => {
      const bs = Array.from({ length: 10 }, (_y, i) => ({
        name: `v${v}m${i}`,
        address: `198.18.${100 + (v >> 4)}.${(v & 15) * 16 + i + 1}`,
        port: 80,
      }));
      return {
        ...full,
        vip: { ...full.vip, address: `198.51.100.${v + 2}` },
        backends: bs,
        slots: buildTable(bs, 4099),
      };
    });
    // Exactly 16,384 slots move to another backend (as a quarter of a 4-backend pool leaving would).
    const moved = Int32Array.from(full.slots);
    for (let s = 0; s < 16_384; s++) moved[s * 4] = ((moved[s * 4] as number) + 1) % names.length;
    const delta: VipTable = { ...full, slots: moved };
    const make = (log = logger): BpfDataPlane =>
      createBpfDataPlane({ interface: 'eth0', netns: h.ns, bpffsPath: bpffs, logger: log, ...ARTIFACTS });
    for (let i = 0; i < APPLY_RUNS; i++) {
      // A new VIP right after the start: the seat (the next VIP's table put in l4f_tables ahead of time,
      // native/bpf-loader/ahead.c) is not ready yet, so the create pays the map-of-maps update itself.
      const cold = make();
      await cold.apply([]);
      times.cold.push(await timed(() => cold.apply([full])));
      // 100 new VIPs in one apply: their tables go into l4f_tables in one batch (one RCU wait, not 100).
      times.many.push(await timed(() => cold.apply([full, ...hundred])));
      await cold.close({ removeState: true });
      const dp = make();
      await dp.apply([]); // loader start and the empty read-back, outside the figure
      await dp.settled(); // a running node: the seat is ready when a new VIP comes
      times.full.push(await timed(() => dp.apply([full])));
      times.delta.push(await timed(() => dp.apply([delta])));
      await dp.apply([full]);
      await dp.close();
      const again = make(startLogger);
      const r = await timed(() => again.apply([full]));
      if (r.r.transactions !== 0) throw new Error(`bpf restart: ${r.r.transactions} requests for an unchanged state`);
      times.restart.push(r);
      await again.close({ removeState: true });
      const t = performance.now();
      await run(['nsenter', `--net=/run/netns/${h.ns}`, 'true']);
      times.nsenter.push(performance.now() - t);
    }
  } finally {
    await lab.cleanup();
    spawnSync('umount', [bpffs]);
    spawnSync('rmdir', [bpffs]);
  }
  const out: Record<string, number> = {
    bpfNsenterSpawnMs: median(times.nsenter),
    bpfRestartFromPins: starts.filter((f) => f === 'pins').length / Math.max(1, starts.length),
  };
  for (const [k, xs] of [
    ['bpfFullApply', times.full],
    ['bpfFullApplyNoSeat', times.cold],
    ['bpfNewVips100', times.many],
    ['bpfDelta16k', times.delta],
    ['bpfRestartReconcile', times.restart],
  ] as const) {
    out[`${k}Ms`] = median(xs.map((x) => x.wall));
    out[`${k}MinMs`] = Math.min(...xs.map((x) => x.wall));
    out[`${k}CpuMs`] = median(xs.map((x) => x.cpu));
  }
  return out;
}
