/**
 * The data-plane gauges of the agent's metrics: counters read from the driver at scrape time (one read per scrape,
 * shared by every gauge), so they cost nothing between scrapes.
 */

import type { DataPlaneCounters } from '@l4fleet/dataplane';
import { Gauge, type Registry } from 'prom-client';

type ReadCounters = () => Promise<DataPlaneCounters | undefined>;

/** One data-plane read per scrape; the source is set once the driver is up. */
export function createDataPlaneReader(): {
  read: ReadCounters;
  setSource(fn: (() => Promise<DataPlaneCounters>) | undefined): void;
} {
  let dpSource: (() => Promise<DataPlaneCounters>) | undefined;
  let dpCache: DataPlaneCounters | undefined;
  let dpInflight: Promise<DataPlaneCounters | undefined> | undefined;
  // prom-client collects all metrics of a scrape concurrently: the data-plane gauges share one read per scrape.
  const read: ReadCounters = () => {
    const source = dpSource;
    if (!source) return Promise.resolve(undefined);
    dpInflight ??= source()
      .then((c) => (dpCache = c))
      .catch(() => dpCache) // keep the last reading: a scrape must not fail because nft was slow once
      .finally(() => setTimeout(() => (dpInflight = undefined), 0).unref());
    return dpInflight;
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
