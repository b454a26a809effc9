import { type Fleet, parseFleet } from '@l4fleet/config';

/**
 * A fleet of `vips` VIPs, each with its own pool of `members` members (weights 1-3): the scale the issues name
 * (100 x 1,000) for store size, propagation and memory. Members of one pool are unique; pools reuse addresses.
 * Addresses stay in the lab ranges: members in 198.18.0.0/15, VIPs in 198.51.100.0/24.
 */
export function largeFleet(vips = 100, members = 1_000): Fleet {
  return parseFleet({
    hashSeed: 1,
    pools: Array.from({ length: vips }, (_, p) => ({
      name: `pool${p}`,
      members: Array.from({ length: members }, (_, i) => ({
        address: `198.${18 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`,
        port: 80, // the VIP's port: direct server return does not rewrite ports
        weight: 1 + (i % 3),
      })),
    })),
    vips: Array.from({ length: vips }, (_, p) => ({
      address: `198.51.100.${p + 1}`,
      port: 80,
      protocol: 'tcp',
      pool: `pool${p}`,
    })),
  });
}

/**
 * The agent tests' small fleet: pool web (members a, b, c; health check `webCheck`) behind 198.51.100.10:80/tcp and
 * pool dns (d1, unchecked) behind 198.51.100.11:53/udp, with 251-slot tables.
 */
export function twoPoolFleet(webCheck: Record<string, unknown>): Fleet {
  return parseFleet({
    hashSeed: 0x5eed,
    pools: [
      {
        name: 'web',
        healthCheck: webCheck,
        members: [
          { name: 'a', address: '198.18.0.21', port: 80 },
          { name: 'b', address: '198.18.0.22', port: 80 },
          { name: 'c', address: '198.18.0.23', port: 80 },
        ],
      },
      { name: 'dns', healthCheck: { type: 'none' }, members: [{ name: 'd1', address: '198.18.0.31', port: 53 }] },
    ],
    vips: [
      { address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web', tableSize: 251 },
      { address: '198.51.100.11', port: 53, protocol: 'udp', pool: 'dns', tableSize: 251 },
    ],
  });
}
