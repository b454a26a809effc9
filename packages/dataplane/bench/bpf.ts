/**
 * The bpf data plane in the data-plane bench, beside nftables in the same run and topology.
 *
 * Per-packet CPU (the method of per-packet.ts: a pinned UDP flood, the sender's CPU time plus its
 * ksoftirqd per delivered packet; every hop runs in the sender's softirq on a veth path), rounds
 * alternating which mode goes first:
 *   fwd       the bare `fwd ip to BACKEND` netdev chain of per-packet.ts, with the bpf program detached;
 *   bpf-l2    the node program, forwarding l2 (redirect_neigh to the backend address);
 *   bpf-gue   the same VIP with forwarding gue (+28 / +48 bytes, the outer header, redirect_neigh);
 *   bpf-ipip  forwarding ipip (+20 / +40 bytes).
 *   fwd-nic, bpf-gue-nic  fwd and gue again with 66 bytes of room in front of each frame, as a NIC's receive
 *             buffer has (headroom.ts; the client's datagrams otherwise have 2, so every encapsulation
 *             reallocates the head); paired with each other. BENCH_PP_NIC=0 leaves them out.
 *   bpf-l2-ranges  bpf-l2 with the VIP's sourceRanges: SOURCE_RANGES prefixes that admit the flood's sources, the
 *             known flows' source a /32 (/128) among SOURCE_RANGES - 2 host prefixes around it (a deep path in
 *             the LPM trie), the new flows' their /20 (/64). BENCH_PP_RANGES=0 leaves it out.
 *   xdp-l2, xdp-gue  the node program with its XDP fast path (xdp: native) in front of tc, the router's end of the
 *             node's veth running an XDP_PASS program (a veth needs it to receive XDP_TX frames) and forwarding on
 *             for the node's eth0 (bpf_fib_lookup), both only during these floods. On veth this measures veth's
 *             XDP, not a NIC's: veth copies every skb into a page with 256 bytes of headroom before the program
 *             runs, and builds a new skb at the peer. BENCH_PP_XDP=0 leaves them out.
 * Known flows (16, remembered in the flow cache) and new flows (every datagram a new 5-tuple), into fresh flow maps
 * and into reused ones (Traffic below), IPv4 and IPv6. Extra = mode - fwd, paired per round (median and
 * quartiles). The backend counts and drops what arrives, encapsulated or not, in a netdev chain.
 * Cross-check: kernel.bpf_stats_enabled=1 during the bpf floods; run_time_ns / run_cnt of the program is
 * the program's own time per packet (it does not include the redirect's transmit or the extra bytes).
 * Apply latency: bpf-apply.ts; the printed lines: bpf-report.ts.
 */
import { spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '@l4fleet/process';
import { pino } from 'pino';
import type { NetnsHost } from '../../../test/support/netns.js';
import { buildXdpPass, xdpPass } from '../../../test/support/xdp-pass.js';
import { type BpfDataPlane, createBpfDataPlane, type Forwarding, type VipTable } from '../src/index.js';
import { ARTIFACTS, BPFFS } from './bpf-apply.js';
import {
  BENCH_FLOW_TABLE_SIZE,
  FLOOD_MAX_S,
  FLOOD_PORT,
  FLOWS,
  floodVip,
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
import { nicHeadroom } from './headroom.js';
import { setSysctl } from './interrupt.js';
import { type Flood, grownSymbols, type Profile, profileFlood } from './profile.js';

const logger = pino({ level: 'silent' });
const SINK = 'l4bench_bpf_sink';
const BASELINE = 'l4bench_bpf_fwd';

type Mode =
  | 'fwd'
  | 'bpf-l2'
  | 'bpf-gue'
  | 'bpf-ipip'
  | 'bpf-l2-ranges'
  | 'fwd-nic'
  | 'bpf-gue-nic'
  | 'xdp-l2'
  | 'xdp-gue';
const RANGES: readonly Mode[] = process.env.BENCH_PP_RANGES === '0' ? [] : ['bpf-l2-ranges'];
const NIC: readonly Mode[] = process.env.BENCH_PP_NIC === '0' ? [] : ['fwd-nic', 'bpf-gue-nic'];
const XDP: readonly Mode[] = process.env.BENCH_PP_XDP === '0' ? [] : ['xdp-l2', 'xdp-gue'];
const MODES: readonly Mode[] = ['fwd', 'bpf-l2', 'bpf-gue', 'bpf-ipip', ...RANGES, ...NIC, ...XDP];
const NEW_MODES: readonly Mode[] = ['fwd', 'bpf-l2', 'bpf-gue', ...RANGES, ...NIC, ...XDP];
/** The sourceRanges of the bpf-l2-ranges VIP, per family. */
export const SOURCE_RANGES = 1_000;
/** Figure names of the non-baseline modes. */
const MODE_NAME: Partial<Record<Mode, string>> = {
  'bpf-l2': 'L2',
  'bpf-gue': 'Gue',
  'bpf-ipip': 'Ipip',
  'bpf-l2-ranges': 'L2Ranges',
  'bpf-gue-nic': 'GueNic',
  'xdp-l2': 'XdpL2',
  'xdp-gue': 'XdpGue',
};
/**
 * known: 16 flows the flow cache remembers. new: every datagram a new 5-tuple, into flow maps made anew (new pins)
 * before each flood. reused: the same new flows into maps that were filled once and emptied in place (the driver's
 * clearFlows), as on a node that has run a while. The two differed for the LRU hash the flows were in until
 * 2026-12-07 (a fresh LRU's free list hands out elements in memory order: its first packets read 150-350 ns low);
 * the flow cache's sets are the same lines either way, so they should agree now (0007 "Flow cache").
 */
type Traffic = 'known' | 'new' | 'reused';
const TRAFFIC_NAME: Record<Traffic, string> = { known: '', new: 'New', reused: 'Reused' };
/** BENCH_PP_TRACE=1: every flood's figures on stderr, in the order they ran (round, position, mode). */
const TRACE = process.env.BENCH_PP_TRACE === '1';
/** BENCH_PP_PROFILE=0: no perf profile of l2 against gue (it needs `perf`, Debian's linux-perf). */
const PROFILE = process.env.BENCH_PP_PROFILE !== '0' && perfAvailable();

function perfAvailable(): boolean {
  const ok = spawnSync('perf', ['--version']).status === 0;
  if (!ok) console.error("bpf bench: no perf, so no profile of where gue's extra goes (apt-get install linux-perf)");
  return ok;
}
export const PROFILE_KEY = 'bpfGueOverL2';

export interface BpfBenchSetup {
  readonly client: NetnsHost;
  /** Holds headroom.ts's client bridge (clientBridge done). */
  readonly router: NetnsHost;
  readonly node: NetnsHost;
  readonly backend: NetnsHost;
  readonly vip: string;
  readonly vip6: string;
  readonly backendAddress: string;
  readonly backendAddress6: string;
  readonly nodeAddresses: readonly string[];
  /** The known-flow floods' source per family (the new-flow floods send from NEW_FLOW_SOURCE_PREFIXES). */
  readonly clientAddresses: { readonly 4: string; readonly 6: string };
  readonly dir: string;
}

/**
 * SOURCE_RANGES prefixes of `family` admitting `client` and the new-flow sources: `client` as a host prefix among
 * host prefixes of the 1,024 addresses around it (so the trie's path to it is as deep as 1,000 prefixes make it).
 */
function benchRanges(family: 4 | 6, client: string): string[] {
  const host = family === 4 ? 32 : 128;
  const around = Array.from({ length: 1024 }, (_x, i) => {
    if (family === 6) return `${client.slice(0, client.lastIndexOf(':') + 1)}${(i + 1).toString(16)}`;
    const [a, b, c] = client.split('.').map(Number) as [number, number, number];
    return `${a}.${b}.${(c & ~3) + (i >> 8)}.${i & 255}`;
  })
    .filter((x) => x !== client)
    .slice(0, SOURCE_RANGES - 2);
  return [`${client}/${host}`, NEW_FLOW_SOURCE_PREFIXES[family], ...around.map((x) => `${x}/${host}`)];
}

function spread(xs: readonly number[]): { med: number; p25: number; p75: number } {
  return { med: median(xs), p25: quantile(xs, 0.25), p75: quantile(xs, 0.75) };
}

export async function measureBpfPerPacket(s: BpfBenchSetup): Promise<Record<string, number>> {
  const flood = join(s.dir, 'udp-flood-bpf');
  await run(['gcc', '-O2', '-Wall', '-o', flood, fileURLToPath(new URL('./udp-flood.c', import.meta.url))]);
  const cpu = Number(process.env.BENCH_PP_CPU ?? availableParallelism() - 1);
  const softirqd = ksoftirqdPid(cpu);
  // Counts and drops whatever the node sends the backend: plain, GUE (6080), IPIP (4 / 41).
  await s.backend.run(['nft', '-f', '-'], {
    input:
      `table netdev ${SINK} {\n  counter sink { }\n  chain in {\n` +
      '    type filter hook ingress device "eth0" priority -10; policy accept;\n' +
      `    udp dport { ${FLOOD_PORT}, 6080 } counter name "sink" drop\n` +
      '    ip protocol 4 counter name "sink" drop\n    ip6 nexthdr 41 counter name "sink" drop\n  }\n}\n',
  });
  const sink = async (): Promise<number> => {
    const out = await s.backend.sh(`nft reset counter netdev ${SINK} sink`);
    return Number(/packets (\d+)/.exec(out)?.[1] ?? Number.NaN);
  };
  let dp: BpfDataPlane | undefined;
  let dpXdp = false;
  /** Whether the pinned flow maps have held a new-flow flood since they were made (traffic `reused`). */
  let lruFilled = false;
  const floodTimeout = { timeoutMs: (FLOOD_MAX_S + 15) * 1000 };
  const passObject = XDP.length > 0 ? buildXdpPass(s.dir) : undefined;
  const tables = (fwd: Forwarding, ranges = false): VipTable[] =>
    [floodVip(s.vip, s.backendAddress), floodVip(s.vip6, s.backendAddress6)].map((t, i) => ({
      ...t,
      forwarding: fwd,
      ...(ranges ? { sourceRanges: benchRanges(i === 0 ? 4 : 6, s.clientAddresses[i === 0 ? 4 : 6]) } : {}),
    }));
  /** The driver with the XDP fast path on or off: a new driver over the same pins when that changes. */
  const attach = async (fwd: Forwarding, xdp = false, ranges = false): Promise<BpfDataPlane> => {
    if (dp && dpXdp !== xdp) {
      await dp.close();
      dp = undefined;
    }
    dpXdp = xdp;
    dp ??= createBpfDataPlane({
      interface: 'eth0',
      netns: s.node.ns,
      nodeAddresses: s.nodeAddresses,
      bpffsPath: BPFFS,
      flowTableSize: BENCH_FLOW_TABLE_SIZE,
      xdp: xdp ? 'native' : 'off',
      logger,
      ...ARTIFACTS,
    });
    await dp.apply(tables(fwd, ranges));
    return dp;
  };
  /** The XDP modes' surroundings: the router's pass program on n0 and forwarding on the node's eth0. */
  const xdpSurroundings = async (on: boolean): Promise<void> => {
    await xdpPass(s.router, 'n0', on ? passObject : undefined);
    const v = on ? 1 : 0;
    await s.node.sh(`sysctl -qw net.ipv4.conf.eth0.forwarding=${v} net.ipv6.conf.eth0.forwarding=${v}`);
  };
  /**
   * The bare `fwd` baseline runs with no program on the node's interface. close() leaves the driver's programs
   * attached (a restarted agent must not interrupt forwarding), so the tc filter and the XDP program an `xdp-*` mode
   * attached are removed here, and bareInterface checks it before each baseline flood. Until 2026-12-07 the XDP
   * program stayed: every `fwd` after the first XDP mode measured veth's XDP path (~+400 ns per packet on the Intel
   * kind), so every extra over it came out low or negative (docs/design/0007, "Measured").
   */
  const detach = async (): Promise<void> => {
    await dp?.close();
    dp = undefined;
    await s.node.run(['tc', 'filter', 'del', 'dev', 'eth0', 'ingress'], { allowFailure: true });
    for (const mode of ['xdp', 'xdpgeneric'])
      await s.node.run(['ip', 'link', 'set', 'dev', 'eth0', mode, 'off'], { allowFailure: true });
  };
  const bareInterface = async (): Promise<void> => {
    const link = (await s.node.run(['ip', '-d', 'link', 'show', 'dev', 'eth0'])).stdout;
    const tc = (await s.node.run(['tc', 'filter', 'show', 'dev', 'eth0', 'ingress'])).stdout.trim();
    const xdp = /prog\/xdp\S*\s+id\s+\d+(\s+name\s+\S+)?/.exec(link)?.[0];
    if (xdp !== undefined || tc !== '')
      throw new Error(`bpf bench: the fwd baseline's interface is not bare: ${[xdp, tc].filter(Boolean).join('; ')}`);
  };
  const argv = (dst: string, traffic: Traffic, family: 4 | 6): string[] =>
    [flood, dst, FLOOD_PORT, PACKETS, WARMUP_PACKETS, traffic === 'known' ? FLOWS : NEW_FLOW_SOCKETS]
      .concat([PAYLOAD_BYTES, cpu, softirqd, FLOOD_MAX_S])
      .concat(traffic === 'known' ? [] : [NEW_FLOW_SOURCES, NEW_FLOW_SOURCE_PREFIXES[family].split('/')[0] as string])
      .map(String);
  const baseline = (family: 4 | 6): string => {
    const ip = family === 4 ? 'ip' : 'ip6';
    const [vip, be] = family === 4 ? [s.vip, s.backendAddress] : [s.vip6, s.backendAddress6];
    return (
      `table netdev ${BASELINE} {\n  chain in {\n    type filter hook ingress device "eth0" priority -100; policy accept;\n` +
      `    meta pkttype host ${ip} daddr ${vip} fwd ${ip} to ${be} device "eth0"\n  }\n}\n`
    );
  };
  /**
   * ns of CPU per delivered packet, and the program's own ns per run (bpf modes, bpf_stats). `profile`: the flood
   * runs under perf (profile.ts), and its profile comes back too.
   */
  const once = async (
    nicMode: Mode,
    family: 4 | 6,
    traffic: Traffic,
    profile?: string,
  ): Promise<{ ns: number; progNs: number; profile?: Profile }> => {
    const nic = nicMode.endsWith('-nic');
    const mode = nic ? (nicMode.slice(0, -4) as Mode) : nicMode;
    const xdp = mode.startsWith('xdp-');
    if (nic) await nicHeadroom(s.router, true);
    if (xdp) await xdpSurroundings(true);
    if (mode === 'fwd') {
      await detach();
      await bareInterface();
      await s.node.run(['nft', '-f', '-'], { input: baseline(family) });
    } else {
      // Empty flow maps for a new-flow flood: new pins (chosen while the driver's clearFlows was quadratic in the
      // bucket count; it is one batch walk now, issue 14, so either would do).
      if (traffic === 'new') {
        await dp?.close({ removeState: true });
        dp = undefined;
        lruFilled = false;
      }
      const ranges = mode.endsWith('-ranges');
      await attach((ranges ? mode.slice(4, -'-ranges'.length) : mode.slice(4)) as Forwarding, xdp, ranges);
      if (traffic === 'reused') {
        // Maps made anew since the last fill: one unmeasured flood fills them first (the first flood into a fresh
        // LRU hash measured 150-350 ns less per first packet than the next ones, 2026-12-07).
        if (!lruFilled) await s.client.run(argv(family === 4 ? s.vip : s.vip6, 'new', family), floodTimeout);
        lruFilled = true;
        await dp?.clearFlows();
      }
    }
    try {
      const before = dp ? await dp.programStats() : undefined;
      await sink();
      const flood = argv(family === 4 ? s.vip : s.vip6, traffic, family);
      const p = profile
        ? await profileFlood(['ip', 'netns', 'exec', s.client.ns, ...flood], cpu, s.dir, profile)
        : undefined;
      const f = p ? p.flood : (JSON.parse((await s.client.run(flood, floodTimeout)).stdout) as Flood);
      const delivered = await sink();
      const lost = Math.max(0, f.sent + WARMUP_PACKETS - delivered);
      if (lost > f.sent * 0.01) {
        throw new Error(`bpf bench ${nicMode} IPv${family} ${traffic}: ${lost} of ${f.sent} lost`);
      }
      const after = dp ? await dp.programStats() : undefined;
      // The XDP modes: the XDP program's own time (tc runs only for what it passes).
      const [b, a] = xdp ? [before?.xdp, after?.xdp] : [before, after];
      const progNs = b && a && a.runCount > b.runCount ? (a.runTimeNs - b.runTimeNs) / (a.runCount - b.runCount) : 0;
      return { ns: (f.cpuNs + f.softirqdNs) / (f.sent - lost), progNs, ...(p ? { profile: p } : {}) };
    } finally {
      if (mode === 'fwd') await s.node.run(['nft', 'delete', 'table', 'netdev', BASELINE]);
      if (nic) await nicHeadroom(s.router, false);
      if (xdp) await xdpSurroundings(false);
    }
  };

  const restoreStats = setSysctl('kernel.bpf_stats_enabled', '1');
  const samples = new Map<string, { ns: number; progNs: number }[]>();
  const profiled: Record<string, number> = {};
  const push = (k: string, v: { ns: number; progNs: number }): void => {
    samples.set(k, [...(samples.get(k) ?? []), v]);
  };
  try {
    for (let round = 0; round < ROUNDS; round++) {
      for (const family of [4, 6] as const) {
        for (const traffic of ['known', 'new', 'reused'] as const) {
          const modes = traffic === 'known' ? MODES : NEW_MODES;
          for (let i = 0; i < modes.length; i++) {
            const mode = modes[(round + i) % modes.length] as Mode;
            const x = await once(mode, family, traffic);
            push(`${family}/${traffic}/${mode}`, x);
            if (TRACE)
              console.error(
                `trace ${round} ${i} IPv${family} ${traffic} ${mode} ${x.ns.toFixed(0)} prog ${x.progNs.toFixed(0)}`,
              );
          }
        }
      }
    }
    // Where gue's extra goes: one more l2 and gue flood each under perf; symbols that grew, in ns per packet.
    if (PROFILE) {
      for (const family of [4, 6] as const) {
        for (const traffic of ['known', 'new'] as const) {
          const name = `${family}-${traffic}`;
          const l2 = (await once('bpf-l2', family, traffic, `${name}-l2`)).profile;
          const gue = (await once('bpf-gue', family, traffic, `${name}-gue`)).profile;
          if (!l2 || !gue) continue;
          profiled[`${PROFILE_KEY}.${family}.${traffic}.total`] = gue.nsPerPacket - l2.nsPerPacket;
          for (const [sym, ns] of grownSymbols(l2, gue, 8)) profiled[`${PROFILE_KEY}.${family}.${traffic}.${sym}`] = ns;
        }
      }
    }
  } finally {
    restoreStats();
    await detach();
    await dp?.close({ removeState: true }).catch(() => undefined);
    // The pins: a last driver removes them.
    const last = createBpfDataPlane({
      interface: 'eth0',
      netns: s.node.ns,
      bpffsPath: BPFFS,
      flowTableSize: BENCH_FLOW_TABLE_SIZE,
      logger,
      ...ARTIFACTS,
    });
    await last.close({ removeState: true }).catch(() => undefined);
    spawnSync('umount', [BPFFS]);
    spawnSync('rmdir', [BPFFS]);
    await s.backend.run(['nft', 'delete', 'table', 'netdev', SINK], { allowFailure: true });
  }

  const figures: Record<string, number> = { ...profiled };
  for (const family of [4, 6] as const) {
    for (const traffic of ['known', 'new', 'reused'] as const) {
      const fwd = samples.get(`${family}/${traffic}/fwd`) ?? [];
      const base = `bpf${family === 6 ? '6' : ''}${TRAFFIC_NAME[traffic]}`;
      figures[`${base}FwdNs`] = median(fwd.map((x) => x.ns));
      const fwdNic = samples.get(`${family}/${traffic}/fwd-nic`) ?? [];
      if (fwdNic.length > 0) figures[`${base}FwdNicNs`] = median(fwdNic.map((x) => x.ns));
      for (const mode of (traffic === 'known' ? MODES : NEW_MODES).filter((m) => !m.startsWith('fwd'))) {
        const xs = samples.get(`${family}/${traffic}/${mode}`) ?? [];
        const name = MODE_NAME[mode] as string;
        // Each mode against its own baseline: the NIC-headroom gue against fwd with the same sender program.
        const against = mode.endsWith('-nic') ? fwdNic : fwd;
        const extra = spread(xs.map((x, i) => x.ns - (against[i]?.ns ?? Number.NaN)));
        figures[`${base}${name}Ns`] = median(xs.map((x) => x.ns));
        figures[`${base}${name}ExtraNs`] = extra.med;
        figures[`${base}${name}ExtraP25Ns`] = extra.p25;
        figures[`${base}${name}ExtraP75Ns`] = extra.p75;
        figures[`${base}${name}ProgNs`] = median(xs.map((x) => x.progNs));
      }
    }
  }
  return figures;
}
