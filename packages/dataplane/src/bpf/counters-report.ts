/**
 * counters() of the bpf data plane: the loader's OP_STATS reply (counters.ts) named by the VIPs and backends of the
 * pinned maps.
 */
import { vipKey } from '@l4fleet/config';
import type { DataPlaneCounters, TrafficCounter } from '../types.js';
import { addressText, STAT } from './codec.js';
import type { Counters } from './counters.js';
import type { XdpMode } from './loader.js';
import type { KernelState } from './plan.js';

/** A backend as counters() reports it: by address and MAC, summed over the VIPs it serves. */
export const counterKey = (addressHex: string, mac: string | undefined): string => `${addressHex}/${mac ?? ''}`;

/**
 * The counters of `c` by VIP, by backend address and MAC (summed over the VIPs it serves), and by drop reason.
 * `members`: the backends (counterKey) of the last applied state, listed even when not live and without traffic.
 */
export function reportCounters(
  state: KernelState,
  c: Counters,
  members: ReadonlySet<string>,
  xdp: XdpMode,
): DataPlaneCounters {
  const zero = (): TrafficCounter => ({ packets: 0, bytes: 0 });
  const vips = [...state.vips.values()].map((v) => ({
    vip: vipKey({ address: addressText(v.key.addressHex), port: v.key.port, protocol: v.key.protocol }),
    ...(c.vips.get(v.value.id) ?? zero()),
  }));
  const byAddress = new Map<string, { address: string; mac?: string; packets: number; bytes: number }>();
  for (const [id, b] of state.backends) {
    const k = counterKey(b.addressHex, b.mac);
    const t = c.backends.get(id) ?? zero();
    const have = byAddress.get(k);
    if (have) {
      have.packets += t.packets;
      have.bytes += t.bytes;
    } else if (b.live || t.packets > 0 || members.has(k)) {
      byAddress.set(k, { address: addressText(b.addressHex), ...(b.mac ? { mac: b.mac } : {}), ...t });
    }
  }
  const stat = (i: number): TrafficCounter => c.stats.get(i) ?? zero();
  return {
    vips,
    backends: [...byAddress.values()],
    drops: {
      port: stat(STAT.port),
      'no-backend': stat(STAT['no-backend']),
      source: stat(STAT.source),
      fragment: stat(STAT.fragment),
      'too-big': stat(STAT['too-big']),
      'no-source': stat(STAT['no-source']),
      'encap-failed': stat(STAT['encap-failed']),
    },
    // The flow cache is never full: a full set forgets one of its flows instead (it then follows the table).
    flowTable: { entries: c.flows4 + c.flows6, fullPackets: 0 },
    secondChance: { tagged: stat(STAT.secondChanceTagged) },
    ...(xdp === 'native' ? { xdp: { forwarded: stat(STAT.xdpForwarded) } } : {}),
    icmp: {
      echoReplied: stat(STAT.icmpEcho),
      errorsForwarded: stat(STAT.icmpForwarded),
      errorsUnmatched: stat(STAT.icmpUnmatched),
    },
  };
}
