/**
 * The data-plane gauges of the agent's metrics: counters read from the driver at scrape time (one read per scrape,
 * shared by every gauge), so they cost nothing between scrapes.
 */

import type { DataPlaneCounters } from '@l4fleet/dataplane';
import type { Logger } from 'pino';
import { Gauge, type Registry } from 'prom-client';

type ReadCounters = () => Promise<DataPlaneCounters | undefined>;

/**
 * How long a scrape waits for the data plane, by default: drivers read their counters behind an apply (bounded only by
 * their 30 s timeouts), and Prometheus gives up on the whole scrape after its scrape_timeout (4 s in deploy/grafana),
 * so a slow read would take every other metric with it and page L4fleetAgentDown on a live agent.
 */
export const DEFAULT_DATAPLANE_READ_TIMEOUT_MS = 1_000;

export interface DataPlaneReader {
  /** The reading a scrape serves: undefined before the first answer, and after a read that failed. */
  read: ReadCounters;
  /** 1 after a read that answered, 0 after one that failed; undefined before the first finished. */
  up(): 0 | 1 | undefined;
  /** The driver's counters, once it is up; `logger` hears of each run of failed reads (its first, and its end). */
  setSource(fn: (() => Promise<DataPlaneCounters>) | undefined, logger?: Logger): void;
}

/**
 * One data-plane read per scrape; the source is set once the driver is up. A read slower than `timeoutMs` leaves the
 * scrape with the last reading (none before the first), and goes on in the background for the next scrape: never two
 * reads at once. A read that fails drops the last reading: its series go missing (and `up()` says 0) until a read
 * answers again, since a frozen counter would read as a VIP without traffic (design note 0006, Metrics).
 */
export function createDataPlaneReader(opts: { timeoutMs?: number } = {}): DataPlaneReader {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_DATAPLANE_READ_TIMEOUT_MS;
  let dpSource: (() => Promise<DataPlaneCounters>) | undefined;
  let log: Logger | undefined;
  let dpCache: DataPlaneCounters | undefined;
  let lastUp: 0 | 1 | undefined;
  /** Reads failed in a row: the first is logged, the others are counted into the recovery's line. */
  let failedReads = 0;
  /** The source's read in flight, possibly from an earlier scrape that stopped waiting for it. */
  let pending: Promise<void> | undefined;
  /** What the gauges of the scrape now running wait for. */
  let scrape: Promise<DataPlaneCounters | undefined> | undefined;

  const answered = (c: DataPlaneCounters): void => {
    dpCache = c;
    lastUp = 1;
    if (failedReads > 0)
      log?.info({ event: 'dataPlaneCountersRecovered', failedReads }, 'data-plane counters read again');
    failedReads = 0;
  };
  const failed = (err: unknown): void => {
    dpCache = undefined;
    lastUp = 0;
    failedReads += 1;
    if (failedReads === 1) {
      log?.warn(
        { event: 'dataPlaneCountersFailed', err },
        'data-plane counters could not be read: the l4fleet_dataplane_* series are missing until a read answers',
      );
    }
  };

  // prom-client collects all metrics of a scrape concurrently: the data-plane gauges share one read per scrape.
  const read: ReadCounters = () => {
    const source = dpSource;
    if (!source) return Promise.resolve(undefined);
    if (scrape) return scrape;
    if (!pending) {
      const p: Promise<void> = Promise.resolve()
        .then(source)
        .then(answered, failed)
        .finally(() => {
          if (pending === p) pending = undefined;
        });
      pending = p;
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
      timer.unref?.();
    });
    scrape = Promise.race([pending, late]).then(() => {
      clearTimeout(timer);
      scrape = undefined;
      return dpCache;
    });
    return scrape;
  };

  return {
    read,
    up: () => (dpSource ? lastUp : undefined),
    setSource(fn, logger) {
      dpSource = fn;
      log = logger;
    },
  };
}

/**
 * Registers the `l4fleet_dataplane_*` gauges on `registers`, each filled from `reader` when scraped. Without a reading
 * (driver not up, first read not answered, last read failed) they have no sample: absent, never a 0 that reads as an
 * idle node; `l4fleet_dataplane_counters_up` says which.
 */
export function registerDataPlaneGauges(registers: Registry[], reader: DataPlaneReader): void {
  const { read } = reader;
  new Gauge({
    name: 'l4fleet_dataplane_counters_up',
    help:
      '1 while the data-plane counters read (the last read answered), 0 after a read failed: the other ' +
      'l4fleet_dataplane_* series are missing then (cannot read, not no traffic); absent before the first read',
    registers,
    async collect() {
      await read();
      const up = reader.up();
      if (up === undefined) this.remove();
      else this.set(up);
    },
  });
  new Gauge({
    name: 'l4fleet_dataplane_vip_packets',
    help: 'packets that entered the forwarding path of each VIP',
    labelNames: ['vip'],
    registers,
    async collect() {
      const c = await read();
      this.reset();
      for (const v of c?.vips ?? []) this.set({ vip: v.vip }, v.packets);
    },
  });
  new Gauge({
    name: 'l4fleet_dataplane_vip_bytes',
    help: 'bytes that entered the forwarding path of each VIP',
    labelNames: ['vip'],
    registers,
    async collect() {
      const c = await read();
      this.reset();
      for (const v of c?.vips ?? []) this.set({ vip: v.vip }, v.bytes);
    },
  });
  new Gauge({
    name: 'l4fleet_dataplane_backend_packets',
    help: 'packets forwarded to each backend address, summed over the VIPs that use it',
    labelNames: ['backend'],
    registers,
    async collect() {
      const c = await read();
      this.reset();
      for (const b of c?.backends ?? []) this.set({ backend: b.address }, b.packets);
    },
  });
  new Gauge({
    name: 'l4fleet_dataplane_drops_packets',
    help: 'packets dropped by the data plane, by reason',
    labelNames: ['reason'],
    registers,
    async collect() {
      const c = await read();
      this.reset();
      for (const [reason, t] of Object.entries(c?.drops ?? {})) this.set({ reason }, t.packets);
    },
  });
  new Gauge({
    name: 'l4fleet_dataplane_second_chance_tagged_packets',
    help:
      "packets sent with their slot's previous owner named for second chance (bpf driver, gue; 0 for the other " +
      'drivers). The backends count what they did with them: l4fleet backend status',
    registers,
    async collect() {
      const c = await read();
      if (c === undefined) this.remove();
      else this.set(c.secondChance?.tagged.packets ?? 0);
    },
  });
  new Gauge({
    name: 'l4fleet_dataplane_xdp_forwarded_packets',
    help:
      'packets the XDP fast path forwarded itself (bpf driver, xdp: native; the rest went through the tc program; ' +
      '0 without it)',
    registers,
    async collect() {
      const c = await read();
      if (c === undefined) this.remove();
      else this.set(c.xdp?.forwarded.packets ?? 0);
    },
  });
  new Gauge({
    name: 'l4fleet_dataplane_icmp_packets',
    help:
      'ICMP to VIP addresses: kind="echo-replied" pings the node answered from the VIP (bpf, nftables); bpf only: ' +
      '"error-forwarded" fragmentation-needed / packet-too-big sent to the flow\'s backend, "error-unmatched" such ' +
      'errors about no VIP flow (dropped)',
    labelNames: ['kind'],
    registers,
    async collect() {
      const icmp = (await read())?.icmp;
      this.reset();
      if (!icmp) return;
      this.set({ kind: 'echo-replied' }, icmp.echoReplied.packets);
      if (icmp.errorsForwarded) this.set({ kind: 'error-forwarded' }, icmp.errorsForwarded.packets);
      if (icmp.errorsUnmatched) this.set({ kind: 'error-unmatched' }, icmp.errorsUnmatched.packets);
    },
  });
  new Gauge({
    name: 'l4fleet_dataplane_flow_entries',
    help: 'flow-affinity entries in the data plane',
    registers,
    async collect() {
      const c = await read();
      if (c === undefined) this.remove();
      else this.set(c.flowTable.entries);
    },
  });
}
