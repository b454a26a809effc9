/**
 * `npm run bench` for @l4fleet/maglev: table build time (median of many runs) at the paper's sizes, churn for
 * remove-one and add-one, heap used by a build, the ratio to a plain C loop of the same algorithm compiled
 * and timed in this same run (bench/reference.c, needs gcc; skipped with a note when absent), and the fill loop
 * alone as WebAssembly and as the TypeScript reference loop (src/fill.ts) on the same cursors, and the pathological
 * weighted build (one member at 65,535, 19,999 at 1) through the per-backend wasm loop and through fill() (the
 * event-driven loop, src/fill-events.ts), with a check that both built the same table, and the pools of one member at 65,535
 * over hundreds of distinct small weights through the loop fill() took before src/fill-events.ts and through fill().
 * Paper (NSDI'16 §5.3): 1.8 ms at M = 65,537 and 22.9 ms at M = 655,373 (C, their hardware).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fill, fillUniformTs } from '../src/fill.js';
import { fillWeightedGroupedTs, groupingPays, rateClasses } from '../src/fill-grouped.js';
import { fillWasm } from '../src/fill-wasm.js';
import { FILL_WASM_BASE64 } from '../src/fill-wasm-bytes.js';
import { buildNamedTable, buildTable, churn, tableStats } from '../src/index.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 31);
const cases = [
  { size: 65_537, backends: 100 },
  { size: 65_537, backends: 1_000 },
  { size: 655_373, backends: 1_000 },
];
const backends = (n: number) => Array.from({ length: n }, (_, i) => ({ name: `backend-${i}` }));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

function timeBuild(size: number, n: number): { ms: number; heapMiB: number } {
  const list = backends(n);
  // Warm up: V8 first runs WebAssembly in its baseline compiler and tiers the fill loop up after it ran hot.
  for (let i = 0; i < 10; i++) buildTable(list, size);
  const times: number[] = [];
  let heapMiB = 0;
  for (let r = 0; r < RUNS; r++) {
    const before = process.memoryUsage().heapUsed;
    const t0 = performance.now();
    const table = buildTable(list, size);
    times.push(performance.now() - t0);
    heapMiB = Math.max(heapMiB, (process.memoryUsage().heapUsed - before + table.byteLength) / 2 ** 20);
  }
  return { ms: median(times), heapMiB };
}

function referenceC(): Map<string, number> | string {
  const dir = mkdtempSync(join(tmpdir(), 'l4fleet-maglev-bench-'));
  try {
    const bin = join(dir, 'reference');
    execFileSync('gcc', ['-O2', '-o', bin, new URL('./reference.c', import.meta.url).pathname], { stdio: 'pipe' });
    const out = execFileSync(bin, [String(RUNS)], { encoding: 'utf8' });
    const result = new Map<string, number>();
    for (const line of out.trim().split('\n')) {
      const [m, n, ms] = line.split(' ');
      result.set(`${m}/${n}`, Number(ms));
    }
    return result;
  } catch (err) {
    return `C reference unavailable: ${(err as Error).message.split('\n')[0]}`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const c = referenceC();
const rows = cases.map(({ size, backends: n }) => {
  const { ms, heapMiB } = timeBuild(size, n);
  const cMs = typeof c === 'string' ? undefined : c.get(`${size}/${n}`);
  return { size, backends: n, buildMs: ms, cMs, ratioToC: cMs ? ms / cMs : undefined, heapMiB };
});

const churnRows = [100, 1_000].map((n) => {
  const list = backends(n);
  const base = buildNamedTable(list, 65_537);
  const removeOne = churn(base, buildNamedTable(list.slice(1), 65_537)).fraction;
  const addOne = churn(base, buildNamedTable([...list, { name: 'backend-new' }], 65_537)).fraction;
  // Ideal: the share of slots the backend that left owned (1/N), or that the new one takes (1/(N+1)).
  return { size: 65_537, backends: n, removeOne, addOne, idealRemove: 1 / n, idealAdd: 1 / (n + 1) };
});

/**
 * The fill loop alone (what src/fill.ts says of the wasm module): the same cursors (offsets and skips spread by
 * a multiplicative hash, as murmur3's would be) through fillWasm and through the TypeScript loop, median of RUNS
 * and best of RUNS after a warm-up (V8 tiers both up), the copy in and out of wasm memory included. The best run
 * is the steadier figure on a loaded machine.
 */
function fillLoop(size: number, n: number): Record<string, number> {
  const cursor0 = new Int32Array(2 * n);
  const owner = Int32Array.from({ length: n }, (_, k) => k);
  for (let k = 0; k < n; k++) {
    cursor0[2 * k] = (Math.imul(k + 1, 0x9e3779b1) >>> 0) % size;
    cursor0[2 * k + 1] = ((Math.imul(k + 1, 0x85ebca6b) >>> 0) % (size - 1)) + 1;
  }
  const table = new Int32Array(size);
  const time = (fill: (cursor: Int32Array) => void): { median: number; best: number } => {
    for (let i = 0; i < 10; i++) fill(cursor0.slice());
    const times: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      const cursor = cursor0.slice();
      const t0 = performance.now();
      fill(cursor);
      times.push(performance.now() - t0);
    }
    return { median: median(times), best: Math.min(...times) };
  };
  const wasm = time((cursor) => fillWasm(table, cursor, owner));
  const ts = time((cursor) => fillUniformTs(table.fill(-1), cursor, owner));
  return { size, backends: n, wasmMs: wasm.median, tsMs: ts.median, wasmBestMs: wasm.best, tsBestMs: ts.best };
}
const fillRows = [fillLoop(65_537, 1_000), fillLoop(655_373, 1_000)];

/**
 * The weighted build that visits every backend every round (src/fill-grouped.ts): one member at weight 65,535 and
 * 19,999 at 1 earn 1 and 1/65,535 a round, ~50,000 rounds of 20,000 visits in the per-backend loop. That loop
 * (the wasm, which fill() used for every weighted table before) runs once, it takes seconds; fill() (the grouped
 * loop first, the event-driven one since src/fill-events.ts; `groupedMs` keeps its name in the JSON) runs RUNS
 * times after a warm-up. Same cursors as fillLoop(); the two tables must be equal.
 */
const pathological = (() => {
  const size = 65_537;
  const n = 20_000;
  const cursor0 = new Int32Array(2 * n);
  const owner = Int32Array.from({ length: n }, (_, k) => k);
  for (let k = 0; k < n; k++) {
    cursor0[2 * k] = (Math.imul(k + 1, 0x9e3779b1) >>> 0) % size;
    cursor0[2 * k + 1] = ((Math.imul(k + 1, 0x85ebca6b) >>> 0) % (size - 1)) + 1;
  }
  const rate = new Float64Array(n).fill(1 / 65_535);
  rate[0] = 1;
  const perBackend = new Int32Array(size);
  let t0 = performance.now();
  fillWasm(perBackend, cursor0.slice(), owner, rate);
  const perBackendMs = performance.now() - t0;
  const grouped = new Int32Array(size);
  let path = '';
  for (let i = 0; i < 3; i++) path = fill(grouped, cursor0.slice(), owner, rate);
  const times: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    t0 = performance.now();
    fill(grouped, cursor0.slice(), owner, rate);
    times.push(performance.now() - t0);
  }
  const identical = grouped.every((v, i) => v === perBackend[i]);
  return { size, backends: n, perBackendMs, groupedMs: median(times), path, identical };
})();

/**
 * One member at 65,535 over hundreds of distinct small weights (or slow-start steps of them): ~M / 2 rounds, and
 * grouping saves nothing, so the loop fill() took before src/fill-events.ts (the wasm per-backend one, or the grouped
 * one where groupingPays) visits hundreds of credits a round. That loop runs once; fill() (now the event-driven
 * loop) runs a few times after a warm-up, median. Same cursors as fillLoop(); the two tables must be equal.
 * BENCH_DISTINCT_SIZES overrides the table sizes (comma-separated; the 2,097,143 rows take ~15 s of old loops).
 */
const distinctShapes: { name: string; weights: number[] }[] = [
  { name: '65,535 + 361 at 1..361', weights: [65_535, ...Array.from({ length: 361 }, (_, i) => i + 1)] },
  {
    name: '65,535 + 810 at (i+1)*20/100',
    weights: [65_535, ...Array.from({ length: 810 }, (_, i) => ((i + 1) * 20) / 100)],
  },
  {
    name: '65,535 + 447 at 1..447 + 99,552 at 1',
    weights: [65_535, ...Array.from({ length: 447 }, (_, i) => i + 1), ...Array(99_552).fill(1)],
  },
];
/** Wall time and this process's CPU time (user + system): on a loaded machine the CPU time is the steadier one. */
function timed(run: () => void): { ms: number; cpuMs: number } {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  run();
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  return { ms, cpuMs: (cpu.user + cpu.system) / 1000 };
}
const distinctSizes = (process.env.BENCH_DISTINCT_SIZES ?? '65537,2097143').split(',').map(Number);
const distinct = distinctSizes.flatMap((size) =>
  distinctShapes
    .filter(({ weights }) => weights.length < size)
    .map(({ name, weights }) => {
      const n = weights.length;
      const top = Math.max(...weights);
      const rate = Float64Array.from(weights, (w) => w / top);
      const owner = Int32Array.from({ length: n }, (_, k) => k);
      const cursor0 = new Int32Array(2 * n);
      for (let k = 0; k < n; k++) {
        cursor0[2 * k] = (Math.imul(k + 1, 0x9e3779b1) >>> 0) % size;
        cursor0[2 * k + 1] = ((Math.imul(k + 1, 0x85ebca6b) >>> 0) % (size - 1)) + 1;
      }
      const classes = rateClasses(rate);
      const oldPath = groupingPays(size, rate, classes) ? 'ts-grouped' : 'wasm-weighted';
      const before = new Int32Array(size);
      const old = timed(() => {
        if (oldPath === 'ts-grouped') fillWeightedGroupedTs(before.fill(-1), cursor0.slice(), owner, rate, classes);
        else fillWasm(before, cursor0.slice(), owner, rate);
      });
      const now = new Int32Array(size);
      let path = fill(now, cursor0.slice(), owner, rate); // warm-up
      const runs = Array.from({ length: 5 }, () => timed(() => (path = fill(now, cursor0.slice(), owner, rate))));
      const identical = now.every((v, i) => v === before[i]);
      return {
        size,
        shape: name,
        oldPath,
        oldMs: old.ms,
        oldCpuMs: old.cpuMs,
        path,
        newMs: median(runs.map((r) => r.ms)),
        newCpuMs: median(runs.map((r) => r.cpuMs)),
        identical,
      };
    }),
);

// Linear in N: churn() maps names once (an indexOf per name was quadratic: seconds at N = 50,000) and tableStats()
// loops instead of spreading 100,000 arguments into Math.max (a call-stack overflow).
const large = (() => {
  const list = backends(100_000);
  const size = 1_000_003;
  const before = buildNamedTable(list, size);
  const after = buildNamedTable(list.slice(1), size);
  // Best of three: the first run also pays for compiling the loops.
  let churnMs = Number.POSITIVE_INFINITY;
  let statsMs = Number.POSITIVE_INFINITY;
  let c100k = churn(before, after);
  let stats = tableStats(before);
  for (let r = 0; r < 3; r++) {
    let t0 = performance.now();
    c100k = churn(before, after);
    churnMs = Math.min(churnMs, performance.now() - t0);
    t0 = performance.now();
    stats = tableStats(before);
    statsMs = Math.min(statsMs, performance.now() - t0);
  }
  return { size, backends: list.length, churnMs, statsMs, removeOne: c100k.fraction, spread: stats.spread };
})();

const f = (x: number | undefined, d = 2) => (x === undefined ? '-' : x.toFixed(d));
console.log(
  `maglev: table build, median of ${RUNS} runs (node ${process.version}, load average ${loadavg()[0]?.toFixed(2)})`,
);
console.log('M        N      build ms   C ms    ratio  heap MiB');
for (const r of rows) {
  console.log(
    `${String(r.size).padEnd(8)} ${String(r.backends).padEnd(6)} ${f(r.buildMs).padStart(8)} ${f(r.cMs).padStart(7)} ${f(r.ratioToC).padStart(7)} ${f(r.heapMiB, 1).padStart(8)}`,
  );
}
if (typeof c === 'string') console.log(c);
console.log('maglev: churn (share of slots that change owner), M = 65,537');
console.log('N      remove-one  ideal (1/N)  add-one  ideal (1/(N+1))');
for (const r of churnRows) {
  console.log(
    `${String(r.backends).padEnd(6)} ${f(100 * r.removeOne, 3).padStart(9)}% ${f(100 * r.idealRemove, 3).padStart(11)}% ${f(100 * r.addOne, 3).padStart(7)}% ${f(100 * r.idealAdd, 3).padStart(15)}%`,
  );
}
const wasmBytes = Buffer.from(FILL_WASM_BASE64, 'base64').length;
console.log(
  `maglev: the fill loop alone, median (best) of ${RUNS} runs: WebAssembly (${wasmBytes}-byte module) vs the TypeScript loop`,
);
console.log('M        N             wasm ms    TypeScript ms  TypeScript / wasm');
for (const r of fillRows) {
  const ms = (a = 0, b = 0) => `${f(a)} (${f(b)})`;
  console.log(
    `${String(r.size).padEnd(8)} ${String(r.backends).padEnd(6)} ${ms(r.wasmMs, r.wasmBestMs).padStart(15)} ${ms(r.tsMs, r.tsBestMs).padStart(16)} ${ms((r.tsMs ?? 0) / (r.wasmMs ?? 1), (r.tsBestMs ?? 0) / (r.wasmBestMs ?? 1)).padStart(18)}x`,
  );
}
console.log(
  `maglev: weighted, 1 member at 65,535 + 19,999 at 1, M = 65,537: per-backend wasm loop ${f(pathological.perBackendMs, 0)} ms (1 run), fill() ${pathological.path} ${f(pathological.groupedMs)} ms (median of ${RUNS}), same table: ${pathological.identical ? 'yes' : 'NO'}`,
);
console.log(
  'maglev: weighted, one member at 65,535 over distinct small weights: the loop fill() took before (1 run) vs fill() now (median of 5), wall ms (CPU ms)',
);
console.log(
  'M        pool                                   before                        now                        same',
);
for (const r of distinct) {
  const before = `${r.oldPath} ${f(r.oldMs, 0)} (${f(r.oldCpuMs, 0)})`;
  const now = `${r.path} ${f(r.newMs, 0)} (${f(r.newCpuMs, 0)})`;
  console.log(
    `${String(r.size).padEnd(8)} ${r.shape.padEnd(38)} ${before.padEnd(29)} ${now.padEnd(26)} ${r.identical ? 'yes' : 'NO'}`,
  );
}
console.log(
  `maglev: N = 100,000, M = 1,000,003: churn (remove-one) ${f(large.churnMs, 1)} ms, tableStats ${f(large.statsMs, 1)} ms`,
);
console.log(
  JSON.stringify({
    bench: 'maglev',
    runs: RUNS,
    build: rows,
    churn: churnRows,
    fill: fillRows,
    wasmBytes,
    pathological,
    distinct,
    large,
  }),
);
