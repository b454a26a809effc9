/** The bpf driver's lines in the data-plane bench's report (figures from bpf.ts and bpf-apply.ts). */

import { PROFILE_KEY, SOURCE_RANGES } from './bpf.js';
import { APPLY_RUNS } from './bpf-apply.js';
import { NIC_HEADROOM_BYTES } from './headroom.js';

/** Known flows; new flows into fresh flow maps; into maps filled once and emptied in place (bpf.ts Traffic). */
const TRAFFIC_LABEL: Record<string, string> = {
  '': 'known flows           ',
  New: 'new flows, fresh maps ',
  Reused: 'new flows, reused maps',
};

export function bpfReport(f: Record<string, number>): string[] {
  const ns = (k: string): string => (f[k] === undefined ? '-' : `${Math.round(f[k] as number)}`);
  const lines: string[] = [];
  // The per-packet rows only when that part ran (BENCH_SKIP=per-packet leaves them out).
  const perPacket = f.bpfFwdNs !== undefined || f.bpf6FwdNs !== undefined;
  if (perPacket) {
    lines.push(
      '\nbpf data plane, CPU per packet over a bare netdev fwd (median [p25-p75] of paired rounds; prog = bpf_stats)',
    );
  }
  for (const fam of perPacket ? ['', '6'] : []) {
    for (const t of ['', 'New', 'Reused']) {
      const base = `bpf${fam}${t}`;
      const label = (m: string): string =>
        m === 'L2Ranges'
          ? `l2, ${SOURCE_RANGES.toLocaleString('en')} sourceRanges`
          : m === 'GueNic'
            ? `gue, ${NIC_HEADROOM_BYTES} B headroom (a NIC's)`
            : m.startsWith('Xdp')
              ? `xdp ${m.slice(3).toLowerCase()} (veth's XDP)`
              : m.toLowerCase();
      const cells = ['L2', 'L2Ranges', 'Gue', 'Ipip', 'GueNic', 'XdpL2', 'XdpGue']
        .filter((m) => f[`${base}${m}ExtraNs`] !== undefined)
        .map(
          (m) =>
            `${label(m)} +${ns(`${base}${m}ExtraNs`)} [${ns(`${base}${m}ExtraP25Ns`)}..${ns(`${base}${m}ExtraP75Ns`)}] ns (prog ${ns(`${base}${m}ProgNs`)})`,
        );
      lines.push(`  IPv${fam || '4'} ${TRAFFIC_LABEL[t]}: fwd ${ns(`${base}FwdNs`)} ns/pkt; ${cells.join('; ')}`);
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
      `bpf apply at M = 65,537, median of ${APPLY_RUNS}: full table ${ms('bpfFullApply')} ` +
        `(right after the start, before its seat is ready: ${ms('bpfFullApplyNoSeat')}); 100 new VIPs at ` +
        `M = 4,099 in one apply ${ms('bpfNewVips100')}; 16,384-slot delta ` +
        `${ms('bpfDelta16k')}; restart with nothing to change ${ms('bpfRestartReconcile')}, loader fast path ` +
        `in ${Math.round(100 * (f.bpfRestartFromPins as number))}% (nsenter alone, no longer used: ` +
        `~${(f.bpfNsenterSpawnMs as number).toFixed(1)} ms)`,
    );
  }
  return lines;
}
