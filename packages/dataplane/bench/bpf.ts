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
 *   xdp-l2, xdp-gue  the node program with its XDP fast path (xdp: native) in front of tc, the router's end of the
 *             node's veth running an XDP_PASS program (a veth needs it to receive XDP_TX frames) and forwarding on
 *             for the node's eth0 (bpf_fib_lookup), both only during these floods. On veth this measures veth's
 *             XDP, not a NIC's: veth copies every skb into a page with 256 bytes of headroom before the program
 *             runs, and builds a new skb at the peer. BENCH_PP_XDP=0 leaves them out.
 * Known flows (16, remembered in the flow LRU) and new flows (every datagram a new 5-tuple; the LRUs are
 * emptied before each such flood), IPv4 and IPv6. Extra = mode - fwd, paired per round (median and
 * quartiles). The backend counts and drops what arrives, encapsulated or not, in a netdev chain.
 * Cross-check: kernel.bpf_stats_enabled=1 during the bpf floods; run_time_ns / run_cnt of the program is
 * the program's own time per packet (it does not include the redirect's transmit or the extra bytes).
 *
 * Apply latency at M = 65,537, 100 backends (median of 7): full table (a new VIP), a 16,384-slot delta,
 * and a restart with nothing to change (a new driver: loader start over the pins, reading the maps back,
 * planning: nothing sent).
 */
import { spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildTable } from '@l4fleet/maglev';
import { run } from '@l4fleet/process';
import { pino } from 'pino';
import type { NetnsHost } from '../../../test/support/netns.js';
import { buildXdpPass, xdpPass } from '../../../test/support/xdp-pass.js';
import { type BpfDataPlane, createBpfDataPlane, type Forwarding, type VipTable } from '../src/index.js';
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
import { NIC_HEADROOM_BYTES, nicHeadroom } from './headroom.js';
import { benchLab } from './interrupt.js';
import { type Flood, grownSymbols, type Profile, profileFlood } from './profile.js';

const logger = pino({ level: 'silent' });
/** The restarts' `programLoaded` events (bpfApplyLatency): which start path the loader took. */
const starts: string[] = [];
const startLogger = pino(
  { level: 'info' },
  {
    write(line: string) {
      const e = JSON.parse(line) as { event?: string; from?: string };
      if (e.event === 'programLoaded') starts.push(e.from ?? '');
    },
  },
);
/**
 * BENCH_BPF_LOADER / BENCH_BPF_OBJECT: another l4fleet-bpf / node.bpf.o than the package build's (to compare a
 * change to the program or the loader in one run of the same bench).
 */
export const ARTIFACTS = {
  ...(process.env.BENCH_BPF_LOADER ? { loaderPath: process.env.BENCH_BPF_LOADER } : {}),
  ...(process.env.BENCH_BPF_OBJECT ? { objectPath: process.env.BENCH_BPF_OBJECT } : {}),
};
const SINK = 'l4bench_bpf_sink';
const BASELINE = 'l4bench_bpf_fwd';
const BPFFS = `/run/l4fleet-bench-bpf-${process.pid}`;
type Mode = 'fwd' | 'bpf-l2' | 'bpf-gue' | 'bpf-ipip' | 'fwd-nic' | 'bpf-gue-nic' | 'xdp-l2' | 'xdp-gue';
const NIC: readonly Mode[] = process.env.BENCH_PP_NIC === '0' ? [] : ['fwd-nic', 'bpf-gue-nic'];
const XDP: readonly Mode[] = process.env.BENCH_PP_XDP === '0' ? [] : ['xdp-l2', 'xdp-gue'];
const MODES: readonly Mode[] = ['fwd', 'bpf-l2', 'bpf-gue', 'bpf-ipip', ...NIC, ...XDP];
const NEW_MODES: readonly Mode[] = ['fwd', 'bpf-l2', 'bpf-gue', ...NIC, ...XDP];
/** Figure names of the non-baseline modes. */
const MODE_NAME: Partial<Record<Mode, string>> = {
  'bpf-l2': 'L2',
  'bpf-gue': 'Gue',
  'bpf-ipip': 'Ipip',
  'bpf-gue-nic': 'GueNic',
  'xdp-l2': 'XdpL2',
  'xdp-gue': 'XdpGue',
};
type Traffic = 'known' | 'new';
/** BENCH_PP_PROFILE=0: no perf profile of l2 against gue (it needs `perf`, Debian's linux-perf). */
const PROFILE = process.env.BENCH_PP_PROFILE !== '0' && perfAvailable();

function perfAvailable(): boolean {
  const ok = spawnSync('perf', ['--version']).status === 0;
  if (!ok) console.error("bpf bench: no perf, so no profile of where gue's extra goes (apt-get install linux-perf)");
  return ok;
}
const PROFILE_KEY = 'bpfGueOverL2';

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
  readonly dir: string;
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
  const passObject = XDP.length > 0 ? buildXdpPass(s.dir) : undefined;
  const tables = (fwd: Forwarding): VipTable[] =>
    [floodVip(s.vip, s.backendAddress), floodVip(s.vip6, s.backendAddress6)].map((t) => ({ ...t, forwarding: fwd }));
  /** The driver with the XDP fast path on or off: a new driver over the same pins when that changes. */
  const attach = async (fwd: Forwarding, xdp = false): Promise<BpfDataPlane> => {
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
    await dp.apply(tables(fwd));
    return dp;
  };
  /** The XDP modes' surroundings: the router's pass program on n0 and forwarding on the node's eth0. */
  const xdpSurroundings = async (on: boolean): Promise<void> => {
    await xdpPass(s.router, 'n0', on ? passObject : undefined);
    const v = on ? 1 : 0;
    await s.node.sh(`sysctl -qw net.ipv4.conf.eth0.forwarding=${v} net.ipv6.conf.eth0.forwarding=${v}`);
  };
  const detach = async (): Promise<void> => {
    await dp?.close();
    dp = undefined;
    await s.node.run(['tc', 'filter', 'del', 'dev', 'eth0', 'ingress'], { allowFailure: true });
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
      await s.node.run(['nft', '-f', '-'], { input: baseline(family) });
    } else {
      // Empty flow LRUs for a new-flow flood: new pins (chosen while the driver's clearFlows was quadratic in the
      // bucket count; it is one batch walk now, issue 14, so either would do).
      if (traffic === 'new') {
        await dp?.close({ removeState: true });
        dp = undefined;
      }
      await attach(mode.slice(4) as Forwarding, xdp);
    }
    try {
      const before = dp ? await dp.programStats() : undefined;
      await sink();
      const flood = argv(family === 4 ? s.vip : s.vip6, traffic, family);
      const p = profile
        ? await profileFlood(['ip', 'netns', 'exec', s.client.ns, ...flood], cpu, s.dir, profile)
        : undefined;
      const f = p
        ? p.flood
        : (JSON.parse((await s.client.run(flood, { timeoutMs: (FLOOD_MAX_S + 15) * 1000 })).stdout) as Flood);
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

  const stats = spawnSync('sysctl', ['-n', 'kernel.bpf_stats_enabled'], { encoding: 'utf8' }).stdout.trim();
  spawnSync('sysctl', ['-qw', 'kernel.bpf_stats_enabled=1']);
  const samples = new Map<string, { ns: number; progNs: number }[]>();
  const profiled: Record<string, number> = {};
  const push = (k: string, v: { ns: number; progNs: number }): void => {
    samples.set(k, [...(samples.get(k) ?? []), v]);
  };
  try {
    for (let round = 0; round < ROUNDS; round++) {
      for (const family of [4, 6] as const) {
        for (const traffic of ['known', 'new'] as const) {
          const modes = traffic === 'known' ? MODES : NEW_MODES;
          for (let i = 0; i < modes.length; i++) {
            const mode = modes[(round + i) % modes.length] as Mode;
            push(`${family}/${traffic}/${mode}`, await once(mode, family, traffic));
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
    spawnSync('sysctl', ['-qw', `kernel.bpf_stats_enabled=${stats || '0'}`]);
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
    for (const traffic of ['known', 'new'] as const) {
      const fwd = samples.get(`${family}/${traffic}/fwd`) ?? [];
      const base = `bpf${family === 6 ? '6' : ''}${traffic === 'new' ? 'New' : ''}`;
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

/** Rounds of the apply latency figures (each: full table, delta, restart). */
const APPLY_RUNS = Number(process.env.BENCH_APPLY_RUNS ?? 7);

/** This process's CPU time in ms (all its threads: JavaScript, GC, compiler). */
const cpuMs = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

/** Wall time and this process's CPU time of `fn` (the loader's own time is in the wall time only). */
async function timed<T>(fn: () => Promise<T>): Promise<{ r: T; wall: number; cpu: number }> {
  const c = cpuMs();
  const t = performance.now();
  const r = await fn();
  return { r, wall: performance.now() - t, cpu: cpuMs() - c };
}

/**
 * Apply latency of the bpf driver at M = 65,537 with 100 backends (median and minimum of APPLY_RUNS):
 * wall time (what the agent waits), and how much of it was this process on a CPU (planning, encoding,
 * decoding; the rest is the loader, the kernel, process start, and waiting for a CPU on a loaded machine).
 * The loader joins the bench's node namespace itself (--netns); bpfNsenterSpawnMs is what `nsenter --net`
 * alone costs, which a restart paid before that. bpfRestartFromPins: the share of restarts that took the
 * loader's fast path (1 = all: the pins opened by path, the object never parsed).
 */
export async function bpfApplyLatency(): Promise<Record<string, number>> {
  const lab = await benchLab('l4bb');
  const bpffs = `${BPFFS}-apply`;
  type Sample = { wall: number; cpu: number };
  const times = { full: [] as Sample[], delta: [] as Sample[], restart: [] as Sample[], nsenter: [] as number[] };
  try {
    const h = await lab.host('lat');
    await h.run(['ip', 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth1']);
    await h.run(['ip', 'link', 'set', 'eth0', 'up']);
    const names = Array.from({ length: 100 }, (_x, i) => ({
      name: `m${i}`,
      address: `198.18.${200 + (i >> 8)}.${i & 255}`,
      port: 80,
    }));
    const full: VipTable = {
      vip: { address: '198.51.100.1', port: 80, protocol: 'tcp' },
      hash: '5-tuple',
      seed: 1,
      backends: names,
      slots: buildTable(names, 65_537),
    };
    // Exactly 16,384 slots move to another backend (as a quarter of a 4-backend pool leaving would).
    const moved = Int32Array.from(full.slots);
    for (let s = 0; s < 16_384; s++) moved[s * 4] = ((moved[s * 4] as number) + 1) % names.length;
    const delta: VipTable = { ...full, slots: moved };
    const make = (log = logger): BpfDataPlane =>
      createBpfDataPlane({ interface: 'eth0', netns: h.ns, bpffsPath: bpffs, logger: log, ...ARTIFACTS });
    for (let i = 0; i < APPLY_RUNS; i++) {
      const dp = make();
      await dp.apply([]); // loader start and the empty read-back, outside the figure
      times.full.push(await timed(() => dp.apply([full])));
      times.delta.push(await timed(() => dp.apply([delta])));
      await dp.apply([full]);
      await dp.close();
      const again = make(startLogger);
      const r = await timed(() => again.apply([full]));
      if (r.r.transactions !== 0) throw new Error(`bpf restart: ${r.r.transactions} requests for an unchanged state`);
      times.restart.push(r);
      await again.close({ removeState: true });
      const t = performance.now();
      await run(['nsenter', `--net=/run/netns/${h.ns}`, 'true']);
      times.nsenter.push(performance.now() - t);
    }
  } finally {
    await lab.cleanup();
    spawnSync('umount', [bpffs]);
    spawnSync('rmdir', [bpffs]);
  }
  const out: Record<string, number> = {
    bpfNsenterSpawnMs: median(times.nsenter),
    bpfRestartFromPins: starts.filter((f) => f === 'pins').length / Math.max(1, starts.length),
  };
  for (const [k, xs] of [
    ['bpfFullApply', times.full],
    ['bpfDelta16k', times.delta],
    ['bpfRestartReconcile', times.restart],
  ] as const) {
    out[`${k}Ms`] = median(xs.map((x) => x.wall));
    out[`${k}MinMs`] = Math.min(...xs.map((x) => x.wall));
    out[`${k}CpuMs`] = median(xs.map((x) => x.cpu));
  }
  return out;
}

export function bpfReport(f: Record<string, number>): string[] {
  const ns = (k: string): string => (f[k] === undefined ? '-' : `${Math.round(f[k] as number)}`);
  const lines = [
    '\nbpf data plane, CPU per packet over a bare netdev fwd (median [p25-p75] of paired rounds; prog = bpf_stats)',
  ];
  for (const fam of ['', '6']) {
    for (const t of ['', 'New']) {
      const base = `bpf${fam}${t}`;
      const label = (m: string): string =>
        m === 'GueNic'
          ? `gue, ${NIC_HEADROOM_BYTES} B headroom (a NIC's)`
          : m.startsWith('Xdp')
            ? `xdp ${m.slice(3).toLowerCase()} (veth's XDP)`
            : m.toLowerCase();
      const cells = ['L2', 'Gue', 'Ipip', 'GueNic', 'XdpL2', 'XdpGue']
        .filter((m) => f[`${base}${m}ExtraNs`] !== undefined)
        .map(
          (m) =>
            `${label(m)} +${ns(`${base}${m}ExtraNs`)} [${ns(`${base}${m}ExtraP25Ns`)}..${ns(`${base}${m}ExtraP75Ns`)}] ns (prog ${ns(`${base}${m}ProgNs`)})`,
        );
      lines.push(
        `  IPv${fam || '4'} ${t ? 'new flows ' : 'known flows'}: fwd ${ns(`${base}FwdNs`)} ns/pkt; ${cells.join('; ')}`,
      );
    }
  }
  const grown = Object.keys(f).filter((k) => k.startsWith(`${PROFILE_KEY}.`));
  if (grown.length > 0) {
    lines.push(
      "  where gue's extra goes (perf cpu-clock on the sender's CPU, one l2 and one gue flood each; kernel symbols " +
        'whose ns/packet grew most from l2 to gue):',
    );
    for (const fam of [4, 6]) {
      for (const t of ['known', 'new']) {
        const prefix = `${PROFILE_KEY}.${fam}.${t}.`;
        const syms = grown
          .filter((k) => k.startsWith(prefix) && !k.endsWith('.total'))
          .map((k) => `${k.slice(prefix.length)} +${ns(k)}`);
        if (f[`${prefix}total`] !== undefined) {
          lines.push(`    IPv${fam} ${t}: +${ns(`${prefix}total`)} ns/pkt in all; ${syms.join(', ')}`);
        }
      }
    }
  }
  if (f.bpfFullApplyMs !== undefined) {
    const ms = (k: string): string =>
      `${(f[`${k}Ms`] as number).toFixed(1)} ms (min ${(f[`${k}MinMs`] as number).toFixed(1)}, ` +
      `this process on CPU ${(f[`${k}CpuMs`] as number).toFixed(1)})`;
    lines.push(
      `bpf apply at M = 65,537, median of ${APPLY_RUNS}: full table ${ms('bpfFullApply')}; 16,384-slot delta ` +
        `${ms('bpfDelta16k')}; restart with nothing to change ${ms('bpfRestartReconcile')}, loader fast path ` +
        `in ${Math.round(100 * (f.bpfRestartFromPins as number))}% (nsenter alone, no longer used: ` +
        `~${(f.bpfNsenterSpawnMs as number).toFixed(1)} ms)`,
    );
  }
  return lines;
}
