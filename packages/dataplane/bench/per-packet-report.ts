/** What per-packet.ts's figures print as: per family, known flows, the perf cross-check, new flows. */
import { NEW_FLOW_SOCKETS, NEW_FLOW_SOURCES } from './flood.js';
import { key, type PerPacketFamily } from './per-packet.js';

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
  if (f[key(family, 'ppNewRounds')] !== undefined) lines.push(...newFlowReport(f, family));
  return lines;
}

function newFlowReport(f: Record<string, number>, family: PerPacketFamily): string[] {
  const n = (k: string, d = 0): string => (f[key(family, k)] as number).toFixed(d);
  const kpps = (k: string): string => (Number(f[key(family, k)]) / 1e3).toFixed(0);
  const noisy = (k: string): string =>
    f[key(family, `${k}Measurable`)]
      ? `${n(`${k}Ns`)} ns`
      : `NOT MEASURABLE here (noise): median ${n(`${k}Ns`)} ns, but the rounds disagree`;
  return [
    `  new flows, IPv${family} (every datagram a new 5-tuple, ${n('ppNewFlowsPerFlood')} per flood from ` +
      `${NEW_FLOW_SOCKETS} ports x ${NEW_FLOW_SOURCES} addresses, flow maps flushed before each, ` +
      `${n('ppNewRounds')} rounds; the sender routes each datagram, so only new-flow floods compare): ` +
      `minimal fwd ${n('ppNewFwdNs')} ns/pkt (${kpps('ppsNewFwd')} kpps, spread ${n('ppNewFwdSpreadNs')}); ` +
      `l4fleet ${n('ppNewL4fleetNs')} ns/pkt (${kpps('ppsNewL4fleet')} kpps, spread ${n('ppNewL4fleetSpreadNs')}); ` +
      `flow-map entries after a flood >= ${n('ppNewFlowEntriesMin')}`,
    `  l4fleet chain extra per new-flow (first) packet: ${noisy('ppNewExtra')} (pairs: p25 ${n('ppNewExtraP25Ns')}, ` +
      `p75 ${n('ppNewExtraP75Ns')}, min ${n('ppNewExtraMinNs')}, max ${n('ppNewExtraMaxNs')}); ` +
      `pps l4fleet/fwd ${n('ppsNewL4fleetVsFwd', 2)}; first packet minus known-flow extra, paired per round: ` +
      `${noisy('ppNewOverKnownExtra')} (p25 ${n('ppNewOverKnownExtraP25Ns')}, p75 ${n('ppNewOverKnownExtraP75Ns')})`,
    f[key(family, 'ppNewPerfNftExtraNs')] === undefined
      ? '  cross-check new flows (perf cpu-clock profile): skipped'
      : `  cross-check new flows (perf cpu-clock, inside nf_tables, a lower bound): l4fleet ` +
        `${n('ppNewPerfNftL4fleetNs')} ns/pkt, fwd ${n('ppNewPerfNftFwdNs')} ns/pkt, extra ${n('ppNewPerfNftExtraNs')} ns`,
  ];
}
