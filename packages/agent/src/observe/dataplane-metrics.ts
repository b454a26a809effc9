/**
 * The data-plane gauges of the agent's metrics: counters read from the driver at scrape time (one read per scrape,
 * shared by every gauge), so they cost nothing between scrapes.
 */

import type { DataPlaneCounters } from '@l4fleet/dataplane';
import { Gauge, type Registry } from 'prom-client';

type ReadCounters = () => Promise<DataPlaneCounters | undefined>;

/**
 * How long a scrape waits for the data plane, by default: drivers read their counters behind an apply (bounded only by
 * their 30 s timeouts), and Prometheus gives up on the whole scrape after its scrape_timeout (4 s in deploy/grafana),
 * so a slow read would take every other metric with it and page L4fleetAgentDown on a live agent.
 */
export const DEFAULT_DATAPLANE_READ_TIMEOUT_MS = 1_000;

/**
 * One data-plane read per scrape; the source is set once the driver is up. A read slower than `timeoutMs` leaves the
 * scrape with the last reading (none before the first), and goes on in the background for the next scrape: never two
 * reads at once.
 */
export function createDataPlaneReader(opts: { timeoutMs?: number } = {}): {
  read: ReadCounters;
  setSource(fn: (() => Promise<DataPlaneCounters>) | undefined): void;
} {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_DATAPLANE_READ_TIMEOUT_MS;
  let dpSource: (() => Promise<DataPlaneCounters>) | undefined;
  let dpCache: DataPlaneCounters | undefined;
  /** The source's read in flight, possibly from an earlier scrape that stopped waiting for it. */
  let pending: Promise<void> | undefined;
  /** What the gauges of the scrape now running wait for. */
  let scrape: Promise<DataPlaneCounters | undefined> | undefined;
  // prom-client collects all metrics of a scrape concurrently: the data-plane gauges share one read per scrape.
  const read: ReadCounters = () => {
    const source = dpSource;
    if (!source) return Promise.resolve(undefined);
    if (scrape) return scrape;
    if (!pending) {
      const p: Promise<void> = Promise.resolve()
        .then(source)
        .then(
          (c) => {
            dpCache = c;
          },
          () => undefined, // keep the last reading: a scrape must not fail because nft was slow once
        )
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
    setSource(fn) {
      dpSource = fn;
    },
  };
}

/** Registers the `l4fleet_dataplane_*` gauges on `registers`, each filled from `read` when scraped. */
export function registerDataPlaneGauges(registers: Registry[], read: ReadCounters): void {
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
      this.set((await read())?.secondChance?.tagged.packets ?? 0);
    },
  });
  new Gauge({
    name: 'l4fleet_dataplane_xdp_forwarded_packets',
    help:
      'packets the XDP fast path forwarded itself (bpf driver, xdp: native; the rest went through the tc program; ' +
      '0 without it)',
    registers,
    async collect() {
      this.set((await read())?.xdp?.forwarded.packets ?? 0);
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
      this.set((await read())?.flowTable.entries ?? 0);
    },
  });
}
