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
        port: 8080,
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
