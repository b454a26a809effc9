/**
 * Store bench against a real etcd (Debian's, started here):
 *  1. change propagation: time from apply() start to each of 16 watchers (separate clients) receiving the new
 *     desired state; p50/p99 over the runs (target p99 <= 100 ms on loopback);
 *  2. scale: a fleet of 100 VIPs x 1,000 members: bytes stored in etcd, apply and read times, client heap.
 * Prints a table and one JSON line. Needs --expose-gc (`npm run bench` sets it): the client heap is the heap a
 * full read leaves live, between two collections. A delivery that does not arrive within DELIVERY_TIMEOUT_MS is
 * counted as missed (printed MISSED, exit code 1) and the run goes on.
 */
import { parseFleet } from '@l4fleet/config';
import { startEtcd } from '@l4fleet/test-support/etcd';
import { largeFleet } from '@l4fleet/test-support/fleets';
import pino from 'pino';
import { EtcdFleetStore } from '../src/etcd-store.js';

const WATCHERS = 16;
/** Waiting for the 16 deliveries of one apply ends here: 50x the p99 target, so only a lost update reaches it. */
const DELIVERY_TIMEOUT_MS = 5_000;
const RUNS = Number(process.env.BENCH_RUNS ?? 100);
const logger = pino({ level: 'silent' });

const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] as number;
};

/** Run i's fleet: its hash seed (i + 1) tells its deliveries from any other run's. */
const smallFleet = (i: number) =>
  parseFleet({
    hashSeed: i + 1,
    pools: [
      {
        name: 'web',
        members: Array.from({ length: 10 }, (_, k) => ({
          address: `198.18.0.${k + 1}`,
          port: 80,
          weight: 1 + ((i + k) % 3),
        })),
      },
    ],
    vips: [{ address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web' }],
  });

/** A full collection; the heap figure means nothing without one, so a run without --expose-gc stops here. */
function collect(): void {
  if (!global.gc) throw new Error('the store bench needs node --expose-gc (npm run bench sets NODE_OPTIONS)');
  global.gc();
}

async function main(): Promise<void> {
  collect();
  const etcd = await startEtcd();
  try {
    const writer = new EtcdFleetStore({ endpoints: etcd.endpoints, logger, prefix: '/bench' });
    await writer.apply(smallFleet(0));
    const readers = Array.from(
      { length: WATCHERS },
      () => new EtcdFleetStore({ endpoints: etcd.endpoints, logger, prefix: '/bench' }),
    );
    let pending: { seed: number; t0: number; left: number; done: () => void } | undefined;
    const latencies: number[] = [];
    let missed = 0;
    const watches = await Promise.all(
      readers.map((r) =>
        r.watchDesired({
          onUpdate: (s) => {
            if (pending && s.fleet.hashSeed === pending.seed) {
              latencies.push(performance.now() - pending.t0);
              if (--pending.left === 0) pending.done();
            }
          },
        }),
      ),
    );
    await new Promise((r) => setTimeout(r, 300));
    for (let i = 1; i <= RUNS; i++) {
      const fleet = smallFleet(i);
      const run = { seed: i + 1, t0: performance.now(), left: WATCHERS, done: () => {} };
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((done) => {
        run.done = done;
        timer = setTimeout(done, DELIVERY_TIMEOUT_MS);
        pending = run;
        void writer.apply(fleet);
      });
      clearTimeout(timer);
      missed += run.left;
      pending = undefined;
    }
    for (const w of watches) await w.close();
    for (const r of readers) await r.close();

    // Scale: 100 VIPs x 1,000 members. The reader connects (reads the small fleet) before the heap is taken, so
    // the figure is what the big fleet's read leaves live; `got` stays referenced until after the second reading.
    const reader = new EtcdFleetStore({ endpoints: etcd.endpoints, logger, prefix: '/bench' });
    await reader.getDesired();
    const big = largeFleet();
    const t0 = performance.now();
    const applied = await writer.apply(big);
    const applyMs = performance.now() - t0;
    collect();
    const heap0 = process.memoryUsage().heapUsed;
    const t1 = performance.now();
    const got = await reader.getDesired();
    const readMs = performance.now() - t1;
    collect();
    const heapMb = (process.memoryUsage().heapUsed - heap0) / 2 ** 20;
    const rssMb = process.memoryUsage().rss / 2 ** 20;
    const keysOut = await etcd.etcdctl('get', '--prefix', '/bench/v1/', '-w', 'json');
    const kvs = (JSON.parse(keysOut).kvs ?? []) as { key: string; value: string }[];
    const storedBytes = kvs.reduce(
      (s, kv) => s + Buffer.from(kv.key, 'base64').length + Buffer.from(kv.value, 'base64').length,
      0,
    );
    const jsonBytes = Buffer.byteLength(JSON.stringify(big));
    const status = JSON.parse(await etcd.etcdctl('endpoint', 'status', '-w', 'json'))[0].Status;
    await reader.close();
    await writer.close();

    const p50 = quantile(latencies, 0.5);
    const p99 = quantile(latencies, 0.99);
    const rows: [string, string][] = [
      [
        'watchers x applies',
        `${WATCHERS} x ${RUNS} (${latencies.length} deliveries${missed > 0 ? `, MISSED ${missed} within ${DELIVERY_TIMEOUT_MS} ms` : ''})`,
      ],
      ['propagation p50', `${p50.toFixed(1)} ms`],
      ['propagation p99', `${p99.toFixed(1)} ms (target <= 100 ms: ${p99 <= 100 ? 'met' : 'MISSED'})`],
      ['propagation max', `${Math.max(...latencies).toFixed(1)} ms`],
      ['100 VIPs x 1,000 members: JSON', `${(jsonBytes / 2 ** 20).toFixed(2)} MiB`],
      [
        'stored (keys + values, gzip)',
        `${(storedBytes / 2 ** 20).toFixed(2)} MiB in ${applied.chunks} chunks (${(jsonBytes / storedBytes).toFixed(1)}x smaller)`,
      ],
      ['etcd db size after bench', `${(status.dbSize / 2 ** 20).toFixed(2)} MiB`],
      ['apply / full read', `${applyMs.toFixed(0)} ms / ${readMs.toFixed(0)} ms`],
      ['client heap for the fleet', `${heapMb.toFixed(1)} MiB (rss ${rssMb.toFixed(0)} MiB)`],
    ];
    for (const [k, v] of rows) console.log(`${k.padEnd(34)} ${v}`);
    console.log(
      JSON.stringify({
        bench: 'store-propagation',
        watchers: WATCHERS,
        runs: RUNS,
        missedDeliveries: missed,
        p50Ms: +p50.toFixed(2),
        p99Ms: +p99.toFixed(2),
        p99TargetMs: 100,
        p99OverTarget: +(p99 / 100).toFixed(3),
        bigFleetJsonBytes: jsonBytes,
        bigFleetStoredBytes: storedBytes,
        compressionRatio: +(jsonBytes / storedBytes).toFixed(2),
        chunks: applied.chunks,
        applyMs: +applyMs.toFixed(1),
        readMs: +readMs.toFixed(1),
        clientHeapMiB: +heapMb.toFixed(1),
        etcdDbBytes: Number(status.dbSize),
        readBack: got.fleet.pools.length,
      }),
    );
    if (missed > 0) process.exitCode = 1;
  } finally {
    await etcd.stop();
  }
}

await main();
