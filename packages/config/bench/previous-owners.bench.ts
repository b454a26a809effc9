/**
 * Second chance (docs/design/0011-second-chance.md): what previous owners add to building a VIP table. A node
 * rebuilds up to MAX_PREVIOUS_TABLES earlier tables from the pool's history; this measures buildVipTable with and
 * without a full history (4 earlier tables, one member added each time) at 65,537 slots. Median of BENCH_RUNS runs
 * (default 5). The size of the stored history record is @l4fleet/store's to measure (its encoding, not these
 * objects): packages/store/bench/history-size.bench.ts.
 */
import { loadavg } from 'node:os';
import {
  buildVipTable,
  type Fleet,
  MAX_PREVIOUS_TABLES,
  type PoolHistory,
  parseFleet,
  recordPoolTable,
  secondChanceOf,
  tableInputsOf,
} from '../src/index.js';

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

const fleetOf = (members: number): Fleet =>
  parseFleet({
    hashSeed: 1,
    pools: [
      {
        name: 'web',
        forwarding: 'gue',
        members: Array.from({ length: members }, (_, i) => ({ address: `198.18.${i >> 8}.${i & 255}`, port: 80 })),
      },
    ],
    vips: [{ address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web', tableSize: 65_537 }],
  });

const rows: Record<string, number | string>[] = [];
for (const members of [100, 1_000, 10_000]) {
  let h: PoolHistory | undefined;
  let fleet = fleetOf(members);
  for (let k = 0; k <= MAX_PREVIOUS_TABLES; k++) {
    fleet = fleetOf(members + k);
    const pool = fleet.pools[0] as Fleet['pools'][number];
    h = recordPoolTable(h, 'web', tableInputsOf(pool, new Map()), secondChanceOf(pool), 1_000 + k);
  }
  const history = new Map([['web', h as PoolHistory]]);
  const vip = fleet.vips[0] as Fleet['vips'][number];
  rows.push({
    members,
    earlierTables: (h as PoolHistory).earlier.length,
    tableMs: Math.round(time(() => buildVipTable(fleet, vip, new Map()))),
    withPreviousOwnersMs: Math.round(time(() => buildVipTable(fleet, vip, new Map(), history))),
  });
}
console.log(`previous owners (load average ${loadavg()[0]?.toFixed(1)}, ${RUNS} runs, median)`);
console.table(rows);
