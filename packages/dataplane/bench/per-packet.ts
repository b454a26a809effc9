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
import { type DataPlane, DEFAULT_TABLE_NAME, type VipTable } from '../src/index.js';

export const FLOOD_PORT = 5401;
const ROUNDS = Number(process.env.BENCH_PP_ROUNDS ?? 7);
const PACKETS = Number(process.env.BENCH_PP_PACKETS ?? 150_000);
const WARMUP_PACKETS = 5_000;
const FLOWS = 16;
const PAYLOAD_BYTES = 18; // 18 + 8 UDP + 20 IP + 14 Ethernet = 60 bytes, a minimum frame (IPv6: 40-byte header, 80)
/** Per flood; the flood stops itself there, and is killed 15 s later. */
const FLOOD_MAX_S = 20;
const BASELINE_TABLE = 'l4bench_fwd';
const SINK_TABLE = 'l4bench_sink';

export type PerPacketMode = 'direct' | 'fwd' | 'l4fleet';
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
  const label = vip.includes(':') ? `[${vip}]:${FLOOD_PORT}/udp` : `${vip}:${FLOOD_PORT}/udp`;
  const c = await dp.counters();
  return c.vips.find((v) => v.vip === label)?.packets ?? 0;
}

/** A figure's key for a family: IPv4 keeps the original names, IPv6 has `pp6` / `pps6` for `pp` / `pps`. */
const key = (family: PerPacketFamily, name: string): string =>
  family === 4 ? name : name.replace(/^pps?/, (m) => `${m}6`);

interface Target {
  readonly family: PerPacketFamily;
  readonly vip: string;
  readonly backendAddress: string;
  /** The minimal baseline chain: only the VIP address matched, `fwd` to the backend. */
  readonly baseline: string;
}

/**
 * Flow-map entries remembered for the flood VIP: the IPv4 flow map, or the IPv6 exact set (an IPv6 flow
 * takes its remembered backend only when its exact 5-tuple is there).
 */
async function rememberedFlows(node: NetnsHost, t: Target): Promise<number> {
  const set = t.family === 4 ? 'flows4_udp' : 'exact6_udp';
  const out = await node.sh(`nft list ${t.family === 4 ? 'map' : 'set'} netdev ${DEFAULT_TABLE_NAME} ${set}`);
  return out.split(` . ${t.vip} . ${FLOOD_PORT} `).length - 1;
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

  const floodArgv = (dst: string): string[] =>
    [flood, dst, FLOOD_PORT, PACKETS, WARMUP_PACKETS, FLOWS, PAYLOAD_BYTES, cpu, softirqd, FLOOD_MAX_S].map(String);
  const once = async (t: Target, mode: PerPacketMode): Promise<Sample> => {
    const what = `per-packet IPv${t.family} ${mode}`;
    if (mode === 'fwd') await s.node.run(['nft', '-f', '-'], { input: t.baseline });
    try {
      const before = await l4fleetVipPackets(s.dp, t.vip);
      await sinkPackets(s.backend);
      const dst = mode === 'direct' ? t.backendAddress : t.vip;
      const r = await s.client.run(floodArgv(dst), { timeoutMs: (FLOOD_MAX_S + 15) * 1000 });
      const f = JSON.parse(r.stdout) as Flood;
      const delivered = await sinkPackets(s.backend);
      const through = (await l4fleetVipPackets(s.dp, t.vip)) - before;
      // The mode must be what it claims: l4fleet's chain saw the flood only in l4fleet mode.
      const expectThrough = mode === 'l4fleet' ? f.sent + WARMUP_PACKETS : 0;
      if (Math.abs(through - expectThrough) > (f.sent + WARMUP_PACKETS) * 0.01) {
        throw new Error(`${what}: l4fleet's VIP counter moved by ${through}, expected ${expectThrough}`);
      }
      const lost = Math.max(0, f.sent + WARMUP_PACKETS - delivered);
      const timed = f.sent - lost;
      if (f.sent < PACKETS / 2 || timed < f.sent * 0.99) {
        throw new Error(`${what}: sent ${f.sent} of ${PACKETS}, ${lost} lost, ${f.errors} send errors`);
      }
      return { nsPerPacket: (f.cpuNs + f.softirqdNs) / timed, pps: (timed * 1e9) / f.wallNs, lost };
    } finally {
      if (mode === 'fwd') await s.node.run(['nft', 'delete', 'table', 'netdev', BASELINE_TABLE]);
    }
  };

  const samples: Record<PerPacketFamily, Record<PerPacketMode, Sample[]>> = {
    4: { direct: [], fwd: [], l4fleet: [] },
    6: { direct: [], fwd: [], l4fleet: [] },
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
    }
  }
  // Cross-check: ns per packet inside nf_tables functions, from a cpu-clock profile of one flood.
  const profiled = async (t: Target, mode: 'fwd' | 'l4fleet'): Promise<number> => {
    if (mode === 'fwd') await s.node.run(['nft', '-f', '-'], { input: t.baseline });
    try {
      const data = join(s.dir, `perf-${t.family}-${mode}.data`);
      const rec = await run(
        ['perf', 'record', '-q', '-e', 'cpu-clock', '-F', '2000', '-C', String(cpu), '-o', data, '--'].concat(
          ['ip', 'netns', 'exec', s.client.ns],
          floodArgv(t.vip),
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

/** The lines the bench prints: IPv4 first (as before), then IPv6. */
export function perPacketReport(f: Record<string, number>): string[] {
  return [...familyReport(f, 4), ...(f.pp6Rounds === undefined ? [] : familyReport(f, 6))];
}

function familyReport(f: Record<string, number>, family: PerPacketFamily): string[] {
  const n = (k: string, d = 0): string => (f[key(family, k)] as number).toFixed(d);
  const kpps = (k: string): string => (Number(f[key(family, k)]) / 1e3).toFixed(0);
  const extra = f[key(family, 'ppExtraMeasurable')]
    ? `${n('ppExtraNs')} ns`
    : `NOT MEASURABLE here (noise): median ${n('ppExtraNs')} ns, but the rounds disagree`;
  const lines = [
    family === 4
      ? `per-packet cost (method: pinned UDP flood, ${n('ppPacketsPerFlood')} x 60-byte frames, 16 known flows, ` +
        `sender thread CPU + its ksoftirqd / delivered packets; ${n('ppRounds')} rounds alternating; medians):`
      : `per-packet cost, IPv6 (same method and rounds, interleaved with IPv4: ${n('ppPacketsPerFlood')} x ` +
        `80-byte frames, 16 known flows, ${n('ppRounds')} rounds; baseline fwd ip6 to):`,
    `  direct to backend ${n('ppDirectNs')} ns/pkt (${kpps('ppsDirect')} kpps); ` +
      `via node, minimal fwd ${n('ppFwdNs')} ns/pkt (${kpps('ppsFwd')} kpps, spread ` +
      `${n('ppFwdSpreadNs')}); via node, l4fleet ${n('ppL4fleetNs')} ns/pkt ` +
      `(${kpps('ppsL4fleet')} kpps, spread ${n('ppL4fleetSpreadNs')})`,
    `  l4fleet chain extra per packet: ${extra} (pairs: p25 ${n('ppExtraP25Ns')}, p75 ${n('ppExtraP75Ns')}, ` +
      `min ${n('ppExtraMinNs')}, max ${n('ppExtraMaxNs')}); pps l4fleet/direct ${n('ppsL4fleetVsDirect', 2)}, ` +
      `l4fleet/fwd ${n('ppsL4fleetVsFwd', 2)}`,
  ];
  if (family === 6) {
    const o = (k: string): string => (f[k] as number).toFixed(0);
    lines.push(
      `  IPv6 extra minus IPv4 extra, paired per round: ` +
        (f.pp6OverV4ExtraMeasurable
          ? `${o('pp6OverV4ExtraNs')} ns`
          : `NOT MEASURABLE here (noise): median ${o('pp6OverV4ExtraNs')} ns, but the rounds disagree`) +
        ` (p25 ${o('pp6OverV4ExtraP25Ns')}, p75 ${o('pp6OverV4ExtraP75Ns')})`,
    );
  }
  lines.push(
    f[key(family, 'ppPerfNftExtraNs')] === undefined
      ? '  cross-check (perf cpu-clock profile): skipped'
      : `  cross-check (perf cpu-clock, time inside nf_tables functions, a lower bound): l4fleet ` +
          `${n('ppPerfNftL4fleetNs')} ns/pkt, fwd ${n('ppPerfNftFwdNs')} ns/pkt, extra ${n('ppPerfNftExtraNs')} ns`,
  );
  return lines;
}
