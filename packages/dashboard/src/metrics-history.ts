/**
 * Packets and flows over the last minutes, from the agents' /metrics (packages/agent/src/observe/metrics.ts).
 * Every tick scrapes all agents at once and appends one column (same time for every node), so the page's charts
 * share one time axis. Packet counters become rates here; a counter that went down (agent restart) gives a gap, as
 * does an agent that answers without its data-plane counters (dataPlaneProblem): never a 0 that reads as no traffic.
 */
import { firstValue, parseExposition, type Sample, sampleText, sumBy } from './prom-text.js';

/** Scrape period: fine enough to see a drain move traffic, light enough for a 2-core box. */
export const SCRAPE_INTERVAL_MS = 2_000;
/** Columns kept: 10 minutes at the default period. */
export const HISTORY_POINTS = 300;
/** An agent that does not answer within this long is shown as unreachable for that column. */
export const SCRAPE_TIMEOUT_MS = 1_500;

/** Metric names the dashboard reads (the Grafana board reads the same ones). */
export const VIP_PACKETS = 'l4fleet_dataplane_vip_packets';
export const BACKEND_PACKETS = 'l4fleet_dataplane_backend_packets';
export const FLOW_ENTRIES = 'l4fleet_dataplane_flow_entries';
export const DROPS = 'l4fleet_dataplane_drops_packets';
/** 1 while the agent reads its data-plane counters, 0 after a read failed (its other families then have no sample). */
export const COUNTERS_UP = 'l4fleet_dataplane_counters_up';

export type Series = Record<string, (number | null)[]>;

export interface MetricsHistory {
  /** Unix seconds per column. */
  readonly t: number[];
  readonly packetsPerNode: Series;
  readonly flowsPerNode: Series;
  /** Summed over nodes; empty when the agents do not export per-backend counters. */
  readonly packetsPerBackend: Series;
  readonly dropsPerNode: Series;
  /** Node -> last scrape problem (absent when the last scrape worked). */
  readonly errors: Record<string, string>;
}

/**
 * What one tick appended: the value of every series at its new column (a series absent here is gone: a backend no
 * node reports any more), and the errors as they are now. Pages are sent the whole history when they connect, then
 * one of these per scrape (append, then keep the last `capacity` columns), not the whole history again.
 */
export interface MetricsColumn {
  /** Unix seconds. */
  readonly t: number;
  /**
   * The time of the column before this one as the server holds it now (null: none). A page whose last column is not
   * this one missed a column or holds times the server moved (the wall clock stepped back): it takes the whole
   * history again rather than append out of order.
   */
  readonly prevT: number | null;
  readonly packetsPerNode: Record<string, number | null>;
  readonly flowsPerNode: Record<string, number | null>;
  readonly packetsPerBackend: Record<string, number | null>;
  readonly dropsPerNode: Record<string, number | null>;
  readonly errors: Record<string, string>;
  /** Columns kept (HISTORY_POINTS unless told otherwise). */
  readonly capacity: number;
}

export type FetchText = (url: string, timeoutMs: number) => Promise<string>;

/** Families every agent exports (declared even before it has a VIP): without them, what answers is no agent. */
const REQUIRED_FAMILIES = [VIP_PACKETS, FLOW_ENTRIES] as const;
/** Families the charts read: a value of theirs that is not a finite number fails the scrape rather than be a gap. */
const CHARTED = new Set([VIP_PACKETS, BACKEND_PACKETS, FLOW_ENTRIES, DROPS]);

/**
 * The samples of an agent's /metrics body; throws naming the problem (prefixed with `url`) when it is not one:
 * node_exporter, an empty 200 or a proxy's page would otherwise chart as an idle node with no traffic.
 */
export function agentSamples(url: string, text: string): Sample[] {
  const { samples, families } = parseExposition(text);
  const missing = REQUIRED_FAMILIES.filter((f) => !families.has(f));
  if (missing.length > 0) throw new Error(`${url}: no ${missing.join(', ')} (not an l4fleet agent's /metrics?)`);
  const bad = samples.find((x) => CHARTED.has(x.name) && !Number.isFinite(x.value));
  if (bad) throw new Error(`${url}: ${sampleText(bad)} is ${bad.value}, not a finite number`);
  return samples;
}

/**
 * Why the agent's data-plane counters are not in `samples` (undefined: they are). An agent that cannot read them
 * (counters_up 0) or has not read them yet (driver not up, first read not answered) keeps the families declared with
 * no sample: summed, that is 0 packets/s, the "VIP without traffic" reading the operator guide's drain waits for. The
 * flow-entry count is there with every reading (0 on an idle node), so its absence says there is no reading.
 */
export function dataPlaneProblem(samples: readonly Sample[]): string | undefined {
  if (firstValue(samples, COUNTERS_UP) === 0) return `data-plane counters unreadable (${COUNTERS_UP} 0)`;
  if (firstValue(samples, FLOW_ENTRIES) === undefined)
    return `no data-plane counters read yet (${FLOW_ENTRIES} has no sample)`;
  return undefined;
}

/**
 * A /metrics body longer than this (16 MiB; an agent exports a few hundred bytes per VIP and per backend) is a failed
 * scrape: whatever answers there is not an agent, and the dashboard must not hold it all in memory until the timeout.
 */
export const MAX_METRICS_BYTES = 16 * 1024 * 1024;

/**
 * GET `url`, its body as text. A redirect is not followed (the URL is the agent's own /metrics; a 3xx fails as any
 * other status does), and a body past `maxBytes` fails the scrape without being read further.
 */
export async function httpFetchText(url: string, timeoutMs: number, maxBytes = MAX_METRICS_BYTES): Promise<string> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), redirect: 'manual' });
  const reader = res.body?.getReader();
  try {
    if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
    const chunks: Uint8Array[] = [];
    let bytes = 0;
    while (reader) {
      const { done, value } = await reader.read();
      if (done) break;
      bytes += value.byteLength;
      if (bytes > maxBytes) throw new Error(`${url}: the body is more than ${maxBytes} bytes`);
      chunks.push(value);
    }
    return Buffer.concat(chunks).toString('utf8');
  } catch (err) {
    // Releases the connection instead of leaving the rest of the body to arrive into nowhere.
    await reader?.cancel().catch(() => undefined);
    throw err;
  }
}

export interface MetricsRecorder {
  history(): MetricsHistory;
  /** The column the last tick appended (undefined before the first). */
  lastColumn(): MetricsColumn | undefined;
  /**
   * Scrapes every target once and appends a column at `nowMs` (wall clock, Unix ms: the time axis). `steadyMs` is a
   * steady clock's reading at the same moment (performance.now()): rates divide by its gap between scrapes, so an NTP
   * step of the wall clock shows no column of near-zero (step forward) or missing (step back) traffic. A wall clock
   * that went back to or before the last column moves every column held back with it (their spacing kept, by the
   * steady clock): the axis stays sorted, as uPlot needs, and says the time the wall clock says now.
   */
  tick(nowMs: number, steadyMs: number): Promise<void>;
}

const roundS = (s: number) => Math.round(s * 10) / 10;

function push(series: Series, key: string, at: number, value: number | null, capacity: number): void {
  let col = series[key];
  if (!col) {
    col = new Array<number | null>(at).fill(null);
    series[key] = col;
  }
  col.push(value);
  if (col.length > capacity) col.splice(0, col.length - capacity);
}

export function createMetricsRecorder(opts: {
  /** Node name -> its agent's /metrics URL. */
  readonly targets: ReadonlyMap<string, string>;
  readonly fetchText?: FetchText;
  readonly capacity?: number;
}): MetricsRecorder {
  const fetchText = opts.fetchText ?? httpFetchText;
  const capacity = opts.capacity ?? HISTORY_POINTS;
  const h: MetricsHistory = {
    t: [],
    packetsPerNode: {},
    flowsPerNode: {},
    packetsPerBackend: {},
    dropsPerNode: {},
    errors: {},
  };
  // Last raw counters per node (total packets, per backend) for rates.
  const prev = new Map<string, { steadyMs: number; packets: number; drops: number; backends: Map<string, number> }>();
  const rate = (now: number, before: number | undefined, dtS: number): number | null =>
    before === undefined || now < before || dtS <= 0 ? null : (now - before) / dtS;

  let last: MetricsColumn | undefined;
  /** The steady clock's reading at the last column (spaces the columns moved back by a wall clock step). */
  let lastSteadyMs: number | undefined;
  /** Moves every column back so the last one is the steady gap before `atS` (which is not after it). */
  const stepBack = (atS: number, steadyMs: number) => {
    const lastT = h.t.at(-1) as number;
    const gapS = Math.max(0.1, roundS((steadyMs - (lastSteadyMs ?? steadyMs)) / 1000));
    const shiftS = lastT + gapS - atS;
    for (let i = 0; i < h.t.length; i++) h.t[i] = roundS((h.t[i] as number) - shiftS);
  };
  // Every series present after a tick had its value for that tick pushed: its last one is the tick's.
  const newest = (series: Series) =>
    Object.fromEntries(Object.entries(series).map(([k, col]) => [k, col.at(-1) ?? null]));

  return {
    history: () => h,
    lastColumn: () => last,
    async tick(nowMs, steadyMs) {
      const atS = Math.round(nowMs / 100) / 10;
      const scraped = await Promise.all(
        [...opts.targets].map(async ([node, url]) => {
          try {
            const samples = agentSamples(url, await fetchText(url, SCRAPE_TIMEOUT_MS));
            // Answered, but without counters: charted as a gap with the reason, as an agent that does not answer.
            const problem = dataPlaneProblem(samples);
            return problem === undefined ? { node, samples } : { node, error: `${url}: ${problem}` };
          } catch (err) {
            return { node, error: (err as Error).message };
          }
        }),
      );
      const column = h.t.length;
      if (column > 0 && atS <= (h.t.at(-1) as number)) stepBack(atS, steadyMs);
      const prevT = h.t.at(-1) ?? null;
      h.t.push(atS);
      lastSteadyMs = steadyMs;
      const backendRates = new Map<string, number | null>();
      for (const s of scraped) {
        const samples: Sample[] | undefined = s.samples;
        if (!samples) {
          h.errors[s.node] = s.error ?? 'unknown';
          prev.delete(s.node);
          for (const series of [h.packetsPerNode, h.flowsPerNode, h.dropsPerNode])
            push(series, s.node, column, null, capacity);
          continue;
        }
        delete h.errors[s.node];
        const packets = [...sumBy(samples, VIP_PACKETS, 'vip').values()].reduce((a, b) => a + b, 0);
        const drops = [...sumBy(samples, DROPS, 'reason').values()].reduce((a, b) => a + b, 0);
        const backends = sumBy(samples, BACKEND_PACKETS, 'backend');
        const p = prev.get(s.node);
        const dtS = p ? (steadyMs - p.steadyMs) / 1000 : 0;
        push(h.packetsPerNode, s.node, column, rate(packets, p?.packets, dtS), capacity);
        push(h.dropsPerNode, s.node, column, rate(drops, p?.drops, dtS), capacity);
        push(h.flowsPerNode, s.node, column, firstValue(samples, FLOW_ENTRIES) ?? null, capacity);
        for (const [b, v] of backends) {
          // A node without a rate this column (first scrape, counter reset) adds nothing; null only if none has one.
          const r = rate(v, p?.backends.get(b), dtS);
          backendRates.set(b, r === null ? (backendRates.get(b) ?? null) : (backendRates.get(b) ?? 0) + r);
        }
        prev.set(s.node, { steadyMs, packets, drops, backends });
      }
      for (const b of new Set([...Object.keys(h.packetsPerBackend), ...backendRates.keys()])) {
        const v = backendRates.get(b);
        push(h.packetsPerBackend, b, column, v ?? null, capacity);
      }
      if (h.t.length > capacity) h.t.splice(0, h.t.length - capacity);
      // Backends come and go with the pools: one no node reports any more goes once its window holds nothing, or a
      // long-running dashboard would keep a series (and send it to every page) for each backend it ever saw.
      for (const [b, col] of Object.entries(h.packetsPerBackend)) {
        if (!backendRates.has(b) && col.every((v) => v === null)) delete h.packetsPerBackend[b];
      }
      last = {
        t: atS,
        prevT,
        packetsPerNode: newest(h.packetsPerNode),
        flowsPerNode: newest(h.flowsPerNode),
        packetsPerBackend: newest(h.packetsPerBackend),
        dropsPerNode: newest(h.dropsPerNode),
        errors: { ...h.errors },
        capacity,
      };
    },
  };
}
