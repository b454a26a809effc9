/**
 * The lab's default fleet file (deploy/examples/lab-fleet.yaml): one TCP VIP, one UDP VIP, one IPv6 TCP VIP, each
 * served by every backend. Members carry the backends' lab names, so `explain flow` answers with the same name the
 * identity server sends (`backend=<name>`).
 */
import { stringify } from 'yaml';
import { memberPort } from './data-path.js';
import { backendAttachment, hostsOfKind, type Topology } from './model.js';

/**
 * The lab's pools have 4-5 backends. Maglev §3.4 asks for M well above 100 N to keep the imbalance near 1%; 4,093
 * slots give that. A backend change then writes ~800-1,000 slots per VIP instead of ~16,000 of the default 65,537
 * (a few ms against ~25 ms per VIP with the netlink writer; 110-240 ms with nft -f: docs/design/0004), and an agent
 * restart reads back 4,093 slots per VIP instead of 65,537 (~0.7 s each). Operators size tables to their pools.
 */
export const LAB_TABLE_SIZE = 4_093;

export function labFleet(topology: Topology): Record<string, unknown> {
  const backends = hostsOfKind(topology, 'backend').map((b) => backendAttachment(topology, b.name));
  const { forwarding } = topology.dataPath;
  const pools: Record<string, unknown>[] = [];
  const vips: Record<string, unknown>[] = [];
  for (const vip of topology.vips) {
    const v6 = vip.address.includes(':');
    pools.push({
      name: vip.name,
      // The identity server answers UDP datagrams on the member address too, so a udp probe works.
      healthCheck:
        vip.protocol === 'udp'
          ? { type: 'udp', payload: 'health', intervalMs: 1000, timeoutMs: 500, rise: 2, fall: 3 }
          : { type: 'tcp', intervalMs: 1000, timeoutMs: 500, rise: 2, fall: 3 },
      members: backends.map((b) => ({
        name: b.host,
        address: v6 ? b.ipv6 : b.ipv4,
        port: memberPort(topology.dataPath, vip.port),
      })),
      // Only when not the default, so the l2 lab's fleet file reads as before (GUE port: the default 6080).
      ...(forwarding === 'l2' ? {} : { forwarding }),
    });
    vips.push({
      address: vip.address,
      port: vip.port,
      protocol: vip.protocol,
      pool: vip.name,
      tableSize: LAB_TABLE_SIZE,
    });
  }
  return { pools, vips };
}

export function labFleetYaml(topology: Topology): string {
  return [
    "# The lab's default fleet, applied by `l4fleet lab up` (generated from the lab topology: `lab export --format fleet`).",
    '# Members are named like the lab backends, so `explain flow` and the identity server (`backend=<name>`) agree.',
    stringify(labFleet(topology), { lineWidth: 0 }),
  ].join('\n');
}
