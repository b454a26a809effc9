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
 * Cross-check (a second method, same run): one more flood per node mode under `perf record -e cpu-clock`
 * (the VM has no hardware PMU) on the sender's CPU; the share of samples in nf_tables functions (nft_*,
 * jhash) times that flood's ns/packet is the time spent inside nf_tables. It is a lower bound of the
 * chain's cost (cache misses it causes elsewhere are not in those functions) and is skipped without perf.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildTable } from '@l4fleet/maglev';
import { type NetnsHost, run } from '../../../test/support/netns.js';
import type { DataPlane, VipTable } from '../src/index.js';

export const FLOOD_PORT = 5401;
const ROUNDS = Number(process.env.BENCH_PP_ROUNDS ?? 7);
const PACKETS = Number(process.env.BENCH_PP_PACKETS ?? 150_000);
const WARMUP_PACKETS = 5_000;
const FLOWS = 16;
const PAYLOAD_BYTES = 18; // 18 + 8 UDP + 20 IP + 14 Ethernet = 60 bytes, a minimum frame
/** Per flood; the flood stops itself there, and is killed 15 s later. */
const FLOOD_MAX_S = 20;
const BASELINE_TABLE = 'l4bench_fwd';
const SINK_TABLE = 'l4bench_sink';

export type PerPacketMode = 'direct' | 'fwd' | 'l4fleet';
const MODES: readonly PerPacketMode[] = ['direct', 'fwd', 'l4fleet'];

export interface PerPacketSetup {
  readonly client: NetnsHost;
  readonly node: NetnsHost;
  readonly backend: NetnsHost;
  /** The l4fleet driver on the node, with floodVip() applied. */
  readonly dp: DataPlane;
  readonly vip: string;
  readonly backendAddress: string;
  /** A scratch directory for the compiled sender. */
  readonly dir: string;
}

/** The UDP VIP the flood goes to; the bench applies it with its other VIPs. */
export function floodVip(vip: string, backendAddress: string): VipTable {
  const backends = [{ name: 'be', address: backendAddress, port: FLOOD_PORT }];
  return {
    vip: { address: vip, port: FLOOD_PORT, protocol: 'udp' },
    hash: '5-tuple',
    seed: 7,
    backends,
    slots: buildTable(backends),
  };
}

interface Flood {
  readonly sent: number;
  readonly errors: number;
  readonly cpuNs: number;
  readonly softirqdNs: number;
  readonly wallNs: number;
}

interface Sample {
  readonly nsPerPacket: number;
  readonly pps: number;
  readonly lost: number;
}

/** Kernel symbols of nf_tables' evaluation (the interpreter, expressions, set back ends, jhash). */
const NFT_SYMBOL = /^(nft_|__nft_|nf_tables_|jhash)/;

const sorted = (xs: readonly number[]): number[] => [...xs].sort((a, b) => a - b);
/** Nearest-rank quantile. */
function quantile(xs: readonly number[], q: number): number {
  const s = sorted(xs);
  return s[Math.min(s.length - 1, Math.max(0, Math.round(q * (s.length - 1))))] as number;
}
const median = (xs: readonly number[]): number => quantile(xs, 0.5);

function ksoftirqdPid(cpu: number): number {
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === `ksoftirqd/${cpu}`) return Number(pid);
    } catch {
      // exited meanwhile
    }
  }
  return 0;
}

async function sinkPackets(backend: NetnsHost): Promise<number> {
  const out = await backend.sh(`nft reset counter netdev ${SINK_TABLE} sink`);
  const m = /packets (\d+)/.exec(out);
  if (!m) throw new Error(`backend sink counter: unexpected output ${JSON.stringify(out.slice(0, 200))}`);
  return Number(m[1]);
}

async function l4fleetVipPackets(dp: DataPlane, vip: string): Promise<number> {
  const c = await dp.counters();
  return c.vips.find((v) => v.vip === `${vip}:${FLOOD_PORT}/udp`)?.packets ?? 0;
}

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
  const baseline =
    `table netdev ${BASELINE_TABLE} {\n  chain in {\n` +
    `    type filter hook ingress device "eth0" priority -100; policy accept;\n` +
    `    meta pkttype host ip daddr ${s.vip} fwd ip to ${s.backendAddress} device "eth0"\n  }\n}\n`;

  const floodArgv = (dst: string): string[] =>
    [flood, dst, FLOOD_PORT, PACKETS, WARMUP_PACKETS, FLOWS, PAYLOAD_BYTES, cpu, softirqd, FLOOD_MAX_S].map(String);
  const once = async (mode: PerPacketMode): Promise<Sample> => {
    if (mode === 'fwd') await s.node.run(['nft', '-f', '-'], { input: baseline });
    try {
      const before = await l4fleetVipPackets(s.dp, s.vip);
      await sinkPackets(s.backend);
      const dst = mode === 'direct' ? s.backendAddress : s.vip;
      const r = await s.client.run(floodArgv(dst), { timeoutMs: (FLOOD_MAX_S + 15) * 1000 });
      const f = JSON.parse(r.stdout) as Flood;
      const delivered = await sinkPackets(s.backend);
      const through = (await l4fleetVipPackets(s.dp, s.vip)) - before;
      // The mode must be what it claims: l4fleet's chain saw the flood only in l4fleet mode.
      const expectThrough = mode === 'l4fleet' ? f.sent + WARMUP_PACKETS : 0;
      if (Math.abs(through - expectThrough) > (f.sent + WARMUP_PACKETS) * 0.01) {
        throw new Error(`per-packet ${mode}: l4fleet's VIP counter moved by ${through}, expected ${expectThrough}`);
      }
      const lost = Math.max(0, f.sent + WARMUP_PACKETS - delivered);
      const timed = f.sent - lost;
      if (f.sent < PACKETS / 2 || timed < f.sent * 0.99) {
        throw new Error(`per-packet ${mode}: sent ${f.sent} of ${PACKETS}, ${lost} lost, ${f.errors} send errors`);
      }
      return { nsPerPacket: (f.cpuNs + f.softirqdNs) / timed, pps: (timed * 1e9) / f.wallNs, lost };
    } finally {
      if (mode === 'fwd') await s.node.run(['nft', 'delete', 'table', 'netdev', BASELINE_TABLE]);
    }
  };

  const samples: Record<PerPacketMode, Sample[]> = { direct: [], fwd: [], l4fleet: [] };
  const deadline = Date.now() + 10 * 60_000;
  for (let round = 0; round < ROUNDS && Date.now() < deadline; round++) {
    for (let i = 0; i < MODES.length; i++) {
      const mode = MODES[(round + i) % MODES.length] as PerPacketMode;
      samples[mode].push(await once(mode));
    }
  }
  // Cross-check: ns per packet inside nf_tables functions, from a cpu-clock profile of one flood.
  const profiled = async (mode: 'fwd' | 'l4fleet'): Promise<number> => {
    if (mode === 'fwd') await s.node.run(['nft', '-f', '-'], { input: baseline });
    try {
      const data = join(s.dir, `perf-${mode}.data`);
      const rec = await run(
        ['perf', 'record', '-q', '-e', 'cpu-clock', '-F', '2000', '-C', String(cpu), '-o', data, '--'].concat(
          ['ip', 'netns', 'exec', s.client.ns],
          floodArgv(s.vip),
        ),
        { timeoutMs: (FLOOD_MAX_S + 15) * 1000 },
      );
      const f = JSON.parse(rec.stdout.trim().split('\n').pop() as string) as Flood;
      const rep = await run(['perf', 'report', '-i', data, '--no-children', '--sort', 'sym', '--stdio'], {
        timeoutMs: 60_000,
      });
      let share = 0;
      for (const m of rep.stdout.matchAll(/^\s*([\d.]+)%\s+\[k\]\s+(\S+)/gm)) {
        if (NFT_SYMBOL.test(m[2] as string)) share += Number(m[1]) / 100;
      }
      return (share * (f.cpuNs + f.softirqdNs)) / f.sent;
    } finally {
      if (mode === 'fwd') await s.node.run(['nft', 'delete', 'table', 'netdev', BASELINE_TABLE]);
    }
  };
  let perf: Record<string, number> = {};
  try {
    const fwdNft = await profiled('fwd');
    const l4fleetNft = await profiled('l4fleet');
    perf = { ppPerfNftFwdNs: fwdNft, ppPerfNftL4fleetNs: l4fleetNft, ppPerfNftExtraNs: l4fleetNft - fwdNft };
  } catch (e) {
    console.error(`per-packet: perf cross-check skipped: ${(e as Error).message.slice(0, 200)}`);
  }

  const ns = (m: PerPacketMode): number[] => samples[m].map((x) => x.nsPerPacket);
  const pps = (m: PerPacketMode): number[] => samples[m].map((x) => x.pps);
  const extra = samples.l4fleet.map((x, i) => x.nsPerPacket - (samples.fwd[i] as Sample).nsPerPacket);
  const p25 = quantile(extra, 0.25);
  const p75 = quantile(extra, 0.75);
  const med = median(extra);
  const measurable = p25 > 0 && p75 - p25 < Math.abs(med);
  return {
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
    ppLost: Math.max(...MODES.flatMap((m) => samples[m].map((x) => x.lost))),
    ...perf,
  };
}

/** The lines the bench prints. */
export function perPacketReport(f: Record<string, number>): string[] {
  const n = (k: string, d = 0): string => (f[k] as number).toFixed(d);
  const extra = f.ppExtraMeasurable
    ? `${n('ppExtraNs')} ns`
    : `NOT MEASURABLE here (noise): median ${n('ppExtraNs')} ns, but the rounds disagree`;
  return [
    `per-packet cost (method: pinned UDP flood, ${n('ppPacketsPerFlood')} x 60-byte frames, 16 known flows, ` +
      `sender thread CPU + its ksoftirqd / delivered packets; ${n('ppRounds')} rounds alternating; medians):`,
    `  direct to backend ${n('ppDirectNs')} ns/pkt (${(Number(f.ppsDirect) / 1e3).toFixed(0)} kpps); ` +
      `via node, minimal fwd ${n('ppFwdNs')} ns/pkt (${(Number(f.ppsFwd) / 1e3).toFixed(0)} kpps, spread ` +
      `${n('ppFwdSpreadNs')}); via node, l4fleet ${n('ppL4fleetNs')} ns/pkt ` +
      `(${(Number(f.ppsL4fleet) / 1e3).toFixed(0)} kpps, spread ${n('ppL4fleetSpreadNs')})`,
    `  l4fleet chain extra per packet: ${extra} (pairs: p25 ${n('ppExtraP25Ns')}, p75 ${n('ppExtraP75Ns')}, ` +
      `min ${n('ppExtraMinNs')}, max ${n('ppExtraMaxNs')}); pps l4fleet/direct ${n('ppsL4fleetVsDirect', 2)}, ` +
      `l4fleet/fwd ${n('ppsL4fleetVsFwd', 2)}`,
    f.ppPerfNftExtraNs === undefined
      ? '  cross-check (perf cpu-clock profile): skipped'
      : `  cross-check (perf cpu-clock, time inside nf_tables functions, a lower bound): l4fleet ` +
        `${n('ppPerfNftL4fleetNs')} ns/pkt, fwd ${n('ppPerfNftFwdNs')} ns/pkt, extra ${n('ppPerfNftExtraNs')} ns`,
  ];
}
