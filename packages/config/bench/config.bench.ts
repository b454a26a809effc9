/**
 * `npm run bench` for @l4fleet/config: what `l4fleet apply --dry-run` spends on a large fleet before it talks to
 * etcd: parsing (YAML text and decoded object) and predicting churn, at the scales of issue 12: 100 VIPs x 1,000
 * members (every pool changed: the worst case) and one pool of 100,000 members (table 1,000,003). Also the time
 * to refuse a fleet over the bounds (it must not grow with the input). Median of BENCH_RUNS runs (default 5).
 */
import { loadavg } from 'node:os';
import { stringify } from 'yaml';
import { type Fleet, MAX_MEMBERS_PER_POOL, parseFleet, parseFleetText, predictChurn } from '../src/index.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

function time(fn: () => unknown): number {
  const times: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const t0 = performance.now();
    fn();
    times.push(performance.now() - t0);
  }
  return median(times);
}

/** `vips` VIPs, each with its own pool of `members` members in 198.18.0.0/15; `bump` raises one weight per pool. */
function rawFleet(vips: number, members: number, tableSize: number, bump = false): Record<string, unknown> {
  return {
    hashSeed: 1,
    pools: Array.from({ length: vips }, (_, p) => ({
      name: `pool${p}`,
      healthCheck: { type: 'none' },
      members: Array.from({ length: members }, (_, i) => ({
        address: `198.${18 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`,
        port: 80,
        weight: bump && i === 0 ? 5 : 1 + (i % 3),
      })),
    })),
    vips: Array.from({ length: vips }, (_, p) => ({
      address: `198.51.100.${p + 1}`,
      port: 80,
      protocol: 'tcp',
      pool: `pool${p}`,
      tableSize,
    })),
  };
}

const rows: Record<string, number | string>[] = [];
for (const { label, vips, members, tableSize } of [
  { label: '100 VIPs x 1,000 members', vips: 100, members: 1_000, tableSize: 65_537 },
  { label: '1 pool of 100,000 members', vips: 1, members: 100_000, tableSize: 1_000_003 },
]) {
  const raw = rawFleet(vips, members, tableSize);
  const text = stringify(raw, { flowCollectionPadding: false });
  const jsonText = JSON.stringify(raw);
  const before: Fleet = parseFleet(raw);
  const after: Fleet = parseFleet(rawFleet(vips, members, tableSize, true));
  const churnMs = time(() => predictChurn(before, after, new Map()));
  const changed = predictChurn(before, after, new Map());
  rows.push({
    fleet: label,
    yamlMiB: Number((text.length / 2 ** 20).toFixed(1)),
    parseTextMs: Math.round(time(() => parseFleetText(text))),
    parseJsonMs: Math.round(time(() => parseFleetText(jsonText))),
    parseObjectMs: Math.round(time(() => parseFleet(raw))),
    churnMs: Math.round(churnMs),
    vipsChanged: changed.length,
    meanChurnPct: Number(((100 * changed.reduce((s, c) => s + c.fraction, 0)) / changed.length).toFixed(3)),
  });
}
// Refusal must cost nothing per member: counts are checked before any member is read.
const oversized = rawFleet(1, MAX_MEMBERS_PER_POOL + 1, 1_000_003);
const refuseMs = time(() => {
  try {
    parseFleet(oversized);
  } catch {
    // expected: TOO_LARGE
  }
});

console.log(
  `config: parse and churn prediction, median of ${RUNS} runs (node ${process.version}, load ${loadavg()[0]?.toFixed(2)})`,
);
console.log(
  'fleet                        YAML MiB  parse YAML ms  parse JSON ms  parse object ms  churn ms  VIPs changed  mean churn',
);
for (const r of rows) {
  console.log(
    `${String(r.fleet).padEnd(28)} ${String(r.yamlMiB).padStart(8)} ${String(r.parseTextMs).padStart(14)} ${String(r.parseJsonMs).padStart(14)} ${String(r.parseObjectMs).padStart(16)} ${String(r.churnMs).padStart(9)} ${String(r.vipsChanged).padStart(13)} ${String(r.meanChurnPct).padStart(10)}%`,
  );
}
console.log(`refusing a pool of ${MAX_MEMBERS_PER_POOL + 1} members (TOO_LARGE): ${refuseMs.toFixed(3)} ms`);
console.log(JSON.stringify({ bench: 'config', runs: RUNS, rows, refuseOversizedMs: refuseMs }));
