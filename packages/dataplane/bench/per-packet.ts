/**
 * Per-packet cost of the nftables data plane, on the data-plane bench's topology and in its run.
 *
 * Method: a pinned UDP flood (udp-flood.c, 18-byte payloads, 16 flows) from the client, three ways,
 * alternating round by round (rotating which goes first):
 *   direct   to the backend's own address (client -> router -> bridge -> backend), no node;
 *   fwd      to the VIP through the node, where a minimal netdev ingress chain (priority -100, before
 *            l4fleet's) only matches the VIP address and does `fwd ip to BACKEND`: L2 forwarding without
 *            any l4fleet lookup;
 *   l4fleet  the same, through the driver's chain (VIP vmap, flow-map lookup + update, live-set check,
 *            counters, MAC map miss, backend map, fwd). Steady state: every flow is already in the flow
 *            map (warm-up packets put it there), which is what all but a flow's first packet cost.
 * The backend drops the datagrams in a netdev ingress chain that counts them (same cost in all modes).
 * CPU per packet = (the sender thread's CPU time + its CPU's ksoftirqd time) / delivered packets: on a
 * veth path every hop runs in the sender's softirq context (see udp-flood.c), so this is the whole
 * path's cost and is not inflated by other tenants of the machine. Extra cost = l4fleet - fwd, paired
 * per round; we report the median of the pairs and their spread, and call it not measurable when the
 * pairs' interquartile range reaches zero or is wider than the median.
 *
 * IPv6 (same run, same method, rounds interleaved with IPv4's): the same flood to an IPv6 UDP VIP, the
 * baseline `fwd ip6 to BACKEND6`. The frames are 80 bytes (same 18-byte payload, a 40-byte header). A known
 * IPv6 flow costs l4fleet more work than an IPv4 one: its 40-byte 5-tuple is jhashed to a 32-bit key (nft
 * cannot update a dynamic map under a wider key), the flow map gives the backend id, the exact set
 * `exact6_udp` (5-tuple . backend id, 44 bytes) confirms it, and both are refreshed per packet (the key
 * hashed again for the update); see src/nft/ruleset.ts, FLOW_KEY_SEEDS. Figures are the IPv4 keys with
 * `pp6` / `pps6` in place of `pp` / `pps`, plus the paired per-round difference of the two extras.
 *
 * New flows (same run; after each family's known-flow floods in every round, fwd and l4fleet alternating
 * which goes first): every datagram a 5-tuple never seen before, the cost of a flow's FIRST packet. The
 * sender cycles 4,096 source addresses (NEW_FLOW_SOURCE_PREFIXES, routed back to the client by the bench)
 * over 64 source ports, so 262,144 tuples, of which a flood uses 155,000 (warm-up included): in l4fleet's
 * chain each misses the flow map (IPv6: both hashed maps), is jhashed into a slot, looked up in the
 * overlay and the slot map, added to the flow map (IPv6: two maps and the exact set) and forwarded.
 * The flow maps are flushed before and after each l4fleet new-flow flood (every flood inserts into an
 * empty map; the known-flow floods see their usual small map) and the bench's node sizes them to
 * BENCH_FLOW_TABLE_SIZE (262,144 > 155,000; the default 65,536 would fill up mid-flood and turn the rest
 * into stateless forwarding) and keeps UDP entries BENCH_FLOW_TIMEOUT_UDP_S (listing 155,000 IPv6 flows
 * for the count takes seconds). After each l4fleet new-flow flood the bench counts the entries (all of
 * the flood's tuples must be there: IPv4 the flow map, IPv6 the exact set, and in the first round both
 * hashed maps too) and checks the flow-table-full counter did not move. The sender routes
 * every datagram afresh (per-datagram source address), so new-flow floods cost more at the sender than
 * known-flow ones: the extra is l4fleet - fwd of new-flow floods, paired per round, and its difference
 * from the known-flow extra is paired per round too. Work the kernel defers out of the packet path (the
 * flow maps' garbage collection walks, in a kworker) is not charged to the sender and not counted.
 *
 * Cross-check (a second method, same run): one more flood per node mode under `perf record -e cpu-clock`
 * (the VM has no hardware PMU) on the sender's CPU; the share of samples in nf_tables functions (nft_*,
 * jhash) times that flood's ns/packet is the time spent inside nf_tables. It is a lower bound of the
 * chain's cost (cache misses it causes elsewhere are not in those functions) and is skipped without perf.
 */
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '@l4fleet/process';
import type { NetnsHost } from '../../../test/support/netns.js';
import type { DataPlane } from '../src/index.js';
import {
  BENCH_FLOW_TABLE_SIZE,
  FLOOD_MAX_S,
  FLOOD_PORT,
  FLOWS,
  ksoftirqdPid,
  median,
  NEW_FLOW_SOCKETS,
  NEW_FLOW_SOURCE_PREFIXES,
  NEW_FLOW_SOURCES,
  PACKETS,
  PAYLOAD_BYTES,
  quantile,
  ROUNDS,
  WARMUP_PACKETS,
} from './flood.js';
import { checkNewFlowEntries, flowTableFullPackets, flushFlows, rememberedFlows, type Target } from './nft-flows.js';
import { type Flood, nsIn, profileFlood } from './profile.js';

const BASELINE_TABLE = 'l4bench_fwd';
const SINK_TABLE = 'l4bench_sink';

export type PerPacketMode = 'direct' | 'fwd' | 'l4fleet';
/** Known: 16 flows already in the flow map. New: every datagram a new 5-tuple (the first-packet path). */
type Traffic = 'known' | 'new';
type NewFlowMode = 'fwd' | 'l4fleet';
const NEW_MODES: readonly NewFlowMode[] = ['fwd', 'l4fleet'];
const MODES: readonly PerPacketMode[] = ['direct', 'fwd', 'l4fleet'];
export type PerPacketFamily = 4 | 6;
const FAMILIES: readonly PerPacketFamily[] = [4, 6];

export interface PerPacketSetup {
  readonly client: NetnsHost;
  readonly node: NetnsHost;
  readonly backend: NetnsHost;
  /** The l4fleet driver on the node, with floodVip() applied. */
  readonly dp: DataPlane;
  readonly vip: string;
  readonly backendAddress: string;
  /** IPv6: the flood VIP (applied through `dp` like `vip`) and the backend's address on the node's segment. */
  readonly vip6: string;
  readonly backendAddress6: string;
  /** A scratch directory for the compiled sender. */
  readonly dir: string;
}

interface Sample {
  readonly nsPerPacket: number;
  readonly pps: number;
  readonly lost: number;
  /** New-flow l4fleet floods: flow-map entries counted after the flood (0 otherwise). */
  readonly entries: number;
}

/** Kernel symbols of nf_tables' evaluation (the interpreter, expressions, set back ends, jhash). */
const NFT_SYMBOL = /^(nft_|__nft_|nf_tables_|jhash)/;

async function sinkPackets(backend: NetnsHost): Promise<number> {
  const out = await backend.sh(`nft reset counter netdev ${SINK_TABLE} sink`);
  const m = /packets (\d+)/.exec(out);
  if (!m) throw new Error(`backend sink counter: unexpected output ${JSON.stringify(out.slice(0, 200))}`);
  return Number(m[1]);
}

async function l4fleetVipPackets(dp: DataPlane, vip: string): Promise<number> {
  const label = vip.includes(':') ? `[${vip}]:${FLOOD_PORT}/udp` : `${vip}:${FLOOD_PORT}/udp`;
  const c = await dp.counters();
  return c.vips.find((v) => v.vip === label)?.packets ?? 0;
}

/** A figure's key for a family: IPv4 keeps the original names, IPv6 has `pp6` / `pps6` for `pp` / `pps`. */
export const key = (family: PerPacketFamily, name: string): string =>
  family === 4 ? name : name.replace(/^pps?/, (m) => `${m}6`);

export async function measurePerPacket(s: PerPacketSetup): Promise<Record<string, number>> {
  const flood = join(s.dir, 'udp-flood');
  await run(['gcc', '-O2', '-Wall', '-o', flood, fileURLToPath(new URL('./udp-flood.c', import.meta.url))]);
  const cpu = Number(process.env.BENCH_PP_CPU ?? availableParallelism() - 1);
  const softirqd = ksoftirqdPid(cpu);
  await s.backend.run(['nft', '-f', '-'], {
    input:
      `table netdev ${SINK_TABLE} {\n  counter sink { }\n  chain in {\n` +
      `    type filter hook ingress device "eth0" priority 0; policy accept;\n` +
      `    udp dport ${FLOOD_PORT} counter name "sink" drop\n  }\n}\n`,
  });
  const baseline = (ip: 'ip' | 'ip6', vip: string, backend: string): string =>
    `table netdev ${BASELINE_TABLE} {\n  chain in {\n` +
    `    type filter hook ingress device "eth0" priority -100; policy accept;\n` +
    `    meta pkttype host ${ip} daddr ${vip} fwd ${ip} to ${backend} device "eth0"\n  }\n}\n`;
  const targets: Record<PerPacketFamily, Target> = {
    4: { family: 4, vip: s.vip, backendAddress: s.backendAddress, baseline: baseline('ip', s.vip, s.backendAddress) },
    6: {
      family: 6,
      vip: s.vip6,
      backendAddress: s.backendAddress6,
      baseline: baseline('ip6', s.vip6, s.backendAddress6),
    },
  };

  const floodArgv = (dst: string, traffic: Traffic = 'known', family: PerPacketFamily = 4): string[] =>
    [flood, dst, FLOOD_PORT, PACKETS, WARMUP_PACKETS]
      .concat(traffic === 'known' ? [FLOWS] : [NEW_FLOW_SOCKETS])
      .concat([PAYLOAD_BYTES, cpu, softirqd, FLOOD_MAX_S])
      .concat(traffic === 'known' ? [] : [NEW_FLOW_SOURCES, NEW_FLOW_SOURCE_PREFIXES[family].split('/')[0] as string])
      .map(String);
  const newFlows = PACKETS + WARMUP_PACKETS;
  if (newFlows > NEW_FLOW_SOCKETS * NEW_FLOW_SOURCES || newFlows > BENCH_FLOW_TABLE_SIZE) {
    throw new Error(`per-packet: ${newFlows} new flows per flood do not fit (BENCH_PP_PACKETS too large)`);
  }
  const once = async (t: Target, mode: PerPacketMode, traffic: Traffic = 'known', round = 0): Promise<Sample> => {
    const what = `per-packet IPv${t.family} ${mode}${traffic === 'new' ? ' new flows' : ''}`;
    const fresh = traffic === 'new' && mode === 'l4fleet';
    if (mode === 'fwd') await s.node.run(['nft', '-f', '-'], { input: t.baseline });
    if (fresh) await flushFlows(s.node, t.family);
    try {
      const before = await l4fleetVipPackets(s.dp, t.vip);
      const fullBefore = fresh ? await flowTableFullPackets(s.node) : 0;
      await sinkPackets(s.backend);
      const dst = mode === 'direct' ? t.backendAddress : t.vip;
      const r = await s.client.run(floodArgv(dst, traffic, t.family), { timeoutMs: (FLOOD_MAX_S + 15) * 1000 });
      const f = JSON.parse(r.stdout) as Flood;
      if (traffic === 'new' && f.distinct !== f.sent + WARMUP_PACKETS) {
        throw new Error(`${what}: ${f.distinct} distinct 5-tuples in ${f.sent + WARMUP_PACKETS} datagrams`);
      }
      const delivered = await sinkPackets(s.backend);
      const lost = Math.max(0, f.sent + WARMUP_PACKETS - delivered);
      let entries = 0;
      if (fresh) {
        // Count first (entries expire), then flush: nft lists every set's elements whatever it is asked
        // for (6-7 s with 155,000 IPv6 flows), so the counters below are read from empty flow maps.
        entries = await checkNewFlowEntries(s.node, t, f.distinct, lost, round === 0);
        await flushFlows(s.node, t.family);
      }
      const through = (await l4fleetVipPackets(s.dp, t.vip)) - before;
      // The mode must be what it claims: l4fleet's chain saw the flood only in l4fleet mode.
      const expectThrough = mode === 'l4fleet' ? f.sent + WARMUP_PACKETS : 0;
      if (Math.abs(through - expectThrough) > (f.sent + WARMUP_PACKETS) * 0.01) {
        throw new Error(`${what}: l4fleet's VIP counter moved by ${through}, expected ${expectThrough}`);
      }
      const timed = f.sent - lost;
      if (f.sent < PACKETS / 2 || timed < f.sent * 0.99) {
        throw new Error(`${what}: sent ${f.sent} of ${PACKETS}, ${lost} lost, ${f.errors} send errors`);
      }
      if (fresh) {
        // The first-packet path, not its stateless fallback: every new flow remembered, none refused.
        const full = (await flowTableFullPackets(s.node)) - fullBefore;
        if (full !== 0) throw new Error(`${what}: ${full} packets forwarded with the flow table full`);
      }
      return { nsPerPacket: (f.cpuNs + f.softirqdNs) / timed, pps: (timed * 1e9) / f.wallNs, lost, entries };
    } finally {
      if (mode === 'fwd') await s.node.run(['nft', 'delete', 'table', 'netdev', BASELINE_TABLE]);
      if (fresh) await flushFlows(s.node, t.family);
    }
  };

  const samples: Record<PerPacketFamily, Record<PerPacketMode, Sample[]>> = {
    4: { direct: [], fwd: [], l4fleet: [] },
    6: { direct: [], fwd: [], l4fleet: [] },
  };
  const newSamples: Record<PerPacketFamily, Record<NewFlowMode, Sample[]>> = {
    4: { fwd: [], l4fleet: [] },
    6: { fwd: [], l4fleet: [] },
  };
  const checked = new Set<PerPacketFamily>();
  const deadline = Date.now() + 10 * 60_000;
  // IPv4 and IPv6 interleaved round by round (which goes first alternates), so both see the same machine.
  for (let round = 0; round < ROUNDS && Date.now() < deadline; round++) {
    for (let j = 0; j < FAMILIES.length; j++) {
      const t = targets[FAMILIES[(round + j) % FAMILIES.length] as PerPacketFamily];
      for (let i = 0; i < MODES.length; i++) {
        const mode = MODES[(round + i) % MODES.length] as PerPacketMode;
        samples[t.family][mode].push(await once(t, mode));
        // Steady state means known flows: after the first l4fleet flood its flows must be remembered.
        if (mode === 'l4fleet' && !checked.has(t.family)) {
          const n = await rememberedFlows(s.node, t);
          if (n < FLOWS) throw new Error(`per-packet IPv${t.family}: ${n} of ${FLOWS} flows remembered`);
          checked.add(t.family);
        }
      }
      // Then the same family's new-flow floods (which of the two goes first alternates by round).
      for (let i = 0; i < NEW_MODES.length; i++) {
        const mode = NEW_MODES[(round + i) % NEW_MODES.length] as NewFlowMode;
        newSamples[t.family][mode].push(await once(t, mode, 'new', round));
      }
    }
  }
  // Cross-check: ns per packet inside nf_tables functions, from a cpu-clock profile of one flood.
  const profiled = async (t: Target, mode: 'fwd' | 'l4fleet', traffic: Traffic = 'known'): Promise<number> => {
    const fresh = traffic === 'new' && mode === 'l4fleet';
    if (mode === 'fwd') await s.node.run(['nft', '-f', '-'], { input: t.baseline });
    if (fresh) await flushFlows(s.node, t.family);
    try {
      const argv = ['ip', 'netns', 'exec', s.client.ns, ...floodArgv(t.vip, traffic, t.family)];
      return nsIn(await profileFlood(argv, cpu, s.dir, `${t.family}-${mode}`), NFT_SYMBOL);
    } finally {
      if (mode === 'fwd') await s.node.run(['nft', 'delete', 'table', 'netdev', BASELINE_TABLE]);
      if (fresh) await flushFlows(s.node, t.family);
    }
  };
  const perf: Record<string, number> = {};
  for (const family of FAMILIES) {
    try {
      const fwdNft = await profiled(targets[family], 'fwd');
      const l4fleetNft = await profiled(targets[family], 'l4fleet');
      perf[key(family, 'ppPerfNftFwdNs')] = fwdNft;
      perf[key(family, 'ppPerfNftL4fleetNs')] = l4fleetNft;
      perf[key(family, 'ppPerfNftExtraNs')] = l4fleetNft - fwdNft;
    } catch (e) {
      console.error(`per-packet: IPv${family} perf cross-check skipped: ${(e as Error).message.slice(0, 200)}`);
    }
    try {
      const fwdNft = await profiled(targets[family], 'fwd', 'new');
      const l4fleetNft = await profiled(targets[family], 'l4fleet', 'new');
      perf[key(family, 'ppNewPerfNftFwdNs')] = fwdNft;
      perf[key(family, 'ppNewPerfNftL4fleetNs')] = l4fleetNft;
      perf[key(family, 'ppNewPerfNftExtraNs')] = l4fleetNft - fwdNft;
    } catch (e) {
      console.error(
        `per-packet: IPv${family} new-flow perf cross-check skipped: ${(e as Error).message.slice(0, 200)}`,
      );
    }
  }

  const extras = {} as Record<PerPacketFamily, number[]>;
  const figures: Record<string, number> = {};
  for (const family of FAMILIES) {
    const fam = samples[family];
    const ns = (m: PerPacketMode): number[] => fam[m].map((x) => x.nsPerPacket);
    const pps = (m: PerPacketMode): number[] => fam[m].map((x) => x.pps);
    const extra = fam.l4fleet.map((x, i) => x.nsPerPacket - (fam.fwd[i] as Sample).nsPerPacket);
    extras[family] = extra;
    const p25 = quantile(extra, 0.25);
    const p75 = quantile(extra, 0.75);
    const med = median(extra);
    const measurable = p25 > 0 && p75 - p25 < Math.abs(med);
    const f: Record<string, number> = {
      ppRounds: extra.length,
      ppPacketsPerFlood: PACKETS,
      ppDirectNs: median(ns('direct')),
      ppFwdNs: median(ns('fwd')),
      ppL4fleetNs: median(ns('l4fleet')),
      ppFwdSpreadNs: quantile(ns('fwd'), 1) - quantile(ns('fwd'), 0),
      ppL4fleetSpreadNs: quantile(ns('l4fleet'), 1) - quantile(ns('l4fleet'), 0),
      ppExtraNs: med,
      ppExtraP25Ns: p25,
      ppExtraP75Ns: p75,
      ppExtraMinNs: quantile(extra, 0),
      ppExtraMaxNs: quantile(extra, 1),
      ppExtraMeasurable: measurable ? 1 : 0,
      ppNodeHopNs: median(ns('fwd')) - median(ns('direct')),
      ppsDirect: median(pps('direct')),
      ppsFwd: median(pps('fwd')),
      ppsL4fleet: median(pps('l4fleet')),
      ppsL4fleetVsDirect: median(pps('l4fleet')) / median(pps('direct')),
      ppsL4fleetVsFwd: median(pps('l4fleet')) / median(pps('fwd')),
      ppLost: Math.max(...MODES.flatMap((m) => fam[m].map((x) => x.lost))),
    };
    for (const [k, v] of Object.entries(f)) figures[key(family, k)] = v;
    for (const k of ['ppPerfNftFwdNs', 'ppPerfNftL4fleetNs', 'ppPerfNftExtraNs']) {
      const v = perf[key(family, k)];
      if (v !== undefined) figures[key(family, k)] = v;
    }
    // New keys after the known-flow ones, so the JSON line keeps its earlier keys in their order.
    for (const [k, v] of Object.entries(newFlowFigures(newSamples[family], extra))) figures[key(family, k)] = v;
    for (const k of ['ppNewPerfNftFwdNs', 'ppNewPerfNftL4fleetNs', 'ppNewPerfNftExtraNs']) {
      const v = perf[key(family, k)];
      if (v !== undefined) figures[key(family, k)] = v;
    }
  }
  // What IPv6 costs l4fleet beyond IPv4, paired per round (both extras come from the same round).
  const rounds = Math.min(extras[4].length, extras[6].length);
  const over = Array.from({ length: rounds }, (_x, i) => (extras[6][i] as number) - (extras[4][i] as number));
  const o25 = quantile(over, 0.25);
  const o75 = quantile(over, 0.75);
  const oMed = median(over);
  Object.assign(figures, {
    pp6OverV4ExtraNs: oMed,
    pp6OverV4ExtraP25Ns: o25,
    pp6OverV4ExtraP75Ns: o75,
    pp6OverV4ExtraMeasurable: (oMed > 0 ? o25 > 0 : o75 < 0) && o75 - o25 < Math.abs(oMed) ? 1 : 0,
  });
  return figures;
}

/** Median, quartiles and the bench's rule "measurable": the quartiles on one side of zero, IQR < |median|. */
function paired(xs: readonly number[]): { med: number; p25: number; p75: number; measurable: boolean } {
  const p25 = quantile(xs, 0.25);
  const p75 = quantile(xs, 0.75);
  const med = median(xs);
  return { med, p25, p75, measurable: (med > 0 ? p25 > 0 : p75 < 0) && p75 - p25 < Math.abs(med) };
}

/** A family's new-flow figures (IPv4 key names); `knownExtra` are the same rounds' known-flow extras. */
function newFlowFigures(fam: Record<NewFlowMode, Sample[]>, knownExtra: readonly number[]): Record<string, number> {
  const ns = (m: NewFlowMode): number[] => fam[m].map((x) => x.nsPerPacket);
  const pps = (m: NewFlowMode): number[] => fam[m].map((x) => x.pps);
  const extra = fam.l4fleet.map((x, i) => x.nsPerPacket - (fam.fwd[i] as Sample).nsPerPacket);
  const e = paired(extra);
  const over = paired(extra.slice(0, knownExtra.length).map((x, i) => x - (knownExtra[i] as number)));
  return {
    ppNewRounds: extra.length,
    ppNewPacketsPerFlood: PACKETS,
    ppNewFlowsPerFlood: PACKETS + WARMUP_PACKETS,
    ppNewFwdNs: median(ns('fwd')),
    ppNewL4fleetNs: median(ns('l4fleet')),
    ppNewFwdSpreadNs: quantile(ns('fwd'), 1) - quantile(ns('fwd'), 0),
    ppNewL4fleetSpreadNs: quantile(ns('l4fleet'), 1) - quantile(ns('l4fleet'), 0),
    ppNewExtraNs: e.med,
    ppNewExtraP25Ns: e.p25,
    ppNewExtraP75Ns: e.p75,
    ppNewExtraMinNs: quantile(extra, 0),
    ppNewExtraMaxNs: quantile(extra, 1),
    ppNewExtraMeasurable: e.measurable ? 1 : 0,
    ppNewOverKnownExtraNs: over.med,
    ppNewOverKnownExtraP25Ns: over.p25,
    ppNewOverKnownExtraP75Ns: over.p75,
    ppNewOverKnownExtraMeasurable: over.measurable ? 1 : 0,
    ppsNewFwd: median(pps('fwd')),
    ppsNewL4fleet: median(pps('l4fleet')),
    ppsNewL4fleetVsFwd: median(pps('l4fleet')) / median(pps('fwd')),
    ppNewLost: Math.max(...NEW_MODES.flatMap((m) => fam[m].map((x) => x.lost))),
    ppNewFlowEntriesMin: Math.min(...fam.l4fleet.map((x) => x.entries)),
  };
}
