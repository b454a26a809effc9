/**
 * "x HAProxy" figures of the data-plane bench. Each path is measured in its own rounds, paired with direct in the
 * same rounds (paths.ts, PathRunner); the paths' rounds are minutes apart, so their Gbit/s medians do not compare
 * (the machine's share moved meanwhile). Two paths compare through their paired x-direct ratios:
 * path x HAProxy = (path x direct) / (HAProxy x direct). A path not measured gives no figure.
 */

const PAIRS = [
  ['nftables', 'Throughput'],
  ['nftables', 'Cps'],
  ['bpfL2', 'Throughput'],
] as const;

/** `${path}VsHaproxy${Throughput|Cps}` for every path of PAIRS measured with HAProxy; {} without HAProxy. */
export function vsHaproxy(f: Readonly<Record<string, number>>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, what] of PAIRS) {
    const path = f[`${k}VsDirect${what}`];
    const haproxy = f[`haproxyVsDirect${what}`];
    if (path === undefined || haproxy === undefined || !(haproxy > 0)) continue;
    out[`${k}VsHaproxy${what}`] = path / haproxy;
  }
  return out;
}

/** The printed line, e.g. "x HAProxy (...): nftables 2.25 (conn/s 1.60), bpf-l2 2.50"; undefined when none. */
export function vsHaproxyLine(f: Readonly<Record<string, number>>): string | undefined {
  const v = { ...f, ...vsHaproxy(f) };
  const parts: string[] = [];
  const nft = v.nftablesVsHaproxyThroughput;
  const nftCps = v.nftablesVsHaproxyCps;
  if (nft !== undefined) {
    parts.push(`nftables ${nft.toFixed(2)}${nftCps === undefined ? '' : ` (conn/s ${nftCps.toFixed(2)})`}`);
  }
  if (v.bpfL2VsHaproxyThroughput !== undefined) parts.push(`bpf-l2 ${v.bpfL2VsHaproxyThroughput.toFixed(2)}`);
  if (parts.length === 0) return undefined;
  return `x HAProxy (ratio of the paired x-direct medians, throughput): ${parts.join(', ')}`;
}
