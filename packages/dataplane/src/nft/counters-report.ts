/**
 * The nftables data plane's DataPlaneCounters (driver.ts counters()), built from what it read: the netdev table's
 * named counters (`nft -j list counters`), the NAT table's counters and the flow maps' sizes.
 */
import { vipKey } from '@l4fleet/config';
import type { DataPlaneCounters, TrafficCounter } from '../types.js';
import {
  backendCounter,
  DROP_FRAGMENT,
  DROP_NO_BACKEND,
  DROP_PORT,
  DROP_SOURCE,
  FLOW_TABLE_FULL,
  hexToAddress,
  ICMP_ECHO,
  parseVipKey,
} from './names.js';
import type { NatTable } from './nat-table.js';
import type { KernelState } from './plan.js';

const sum = (a: TrafficCounter, b: TrafficCounter): TrafficCounter => ({
  packets: a.packets + b.packets,
  bytes: a.bytes + b.bytes,
});

/**
 * `byName`: the netdev table's counters by name (empty before the table is written); `state`: what the driver
 * wrote (VIP labels, backends); `entries`: the flow maps' elements together.
 */
export function nftCountersReport(
  byName: ReadonlyMap<string, TrafficCounter>,
  natCounters: Awaited<ReturnType<NatTable['counters']>>,
  state: KernelState | null | undefined,
  entries: number,
): DataPlaneCounters {
  const zero = { packets: 0, bytes: 0 };
  const vips = [...byName]
    .filter(([name]) => parseVipKey(name))
    .map(([name, c]) => {
      const k = parseVipKey(name) as NonNullable<ReturnType<typeof parseVipKey>>;
      const label =
        state?.vips.get(name)?.label ??
        vipKey({ address: hexToAddress(k.addressHex), port: k.port, protocol: k.protocol });
      return { vip: label, ...c };
    })
    // NAT VIPs: connections (their chain sees the first packet of each), design note 0012.
    .concat([...natCounters.vips].map(([vip, c]) => ({ vip, ...c })));
  const backends = [...(state?.backends.values() ?? [])].map((b) => ({
    address: hexToAddress(b.addressHex),
    ...(b.mac ? { mac: b.mac } : {}),
    ...(byName.get(backendCounter(b.id)) ?? zero),
  }));
  return {
    vips,
    backends,
    drops: {
      port: sum(byName.get(DROP_PORT) ?? zero, natCounters.port),
      'no-backend': sum(byName.get(DROP_NO_BACKEND) ?? zero, natCounters.noBackend),
      source: sum(byName.get(DROP_SOURCE) ?? zero, natCounters.source),
      // The netdev table's only: the NAT table sits behind the IP stack's reassembly and sees whole datagrams.
      fragment: byName.get(DROP_FRAGMENT) ?? zero,
    },
    flowTable: { entries, fullPackets: byName.get(FLOW_TABLE_FULL)?.packets ?? 0 },
    icmp: { echoReplied: byName.get(ICMP_ECHO) ?? zero },
  };
}
