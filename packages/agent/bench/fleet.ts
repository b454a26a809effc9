/** Bench fleets: `vips` VIPs, each with its own pool of `members` members. */
import { type Fleet, parseFleet } from '@l4fleet/config';

export function benchFleet(opts: {
  vips: number;
  members: number;
  check?: 'none' | 'tcp';
  memberPort?: number;
  weightBump?: { pool: number; member: number; weight: number };
}): Fleet {
  const labAddress = (i: number): string => {
    if (i >= 131_072) throw new Error(`fleet: ${opts.vips} x ${opts.members} members do not fit in 198.18.0.0/15`);
    return `198.${18 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
  };
  const pools = Array.from({ length: opts.vips }, (_, p) => ({
    name: `pool${p}`,
    healthCheck: opts.check === 'tcp' ? { type: 'tcp', intervalMs: 2_000, timeoutMs: 1_000 } : { type: 'none' },
    members: Array.from({ length: opts.members }, (_, m) => ({
      name: `p${p}-m${m}`,
      // the (p, m)-th address of the lab's 198.18.0.0/15 (131,072 of them), or loopback addresses for probed
      // members (Linux answers all of 127/8 on lo)
      address:
        opts.check === 'tcp'
          ? `127.${1 + p}.${Math.floor(m / 250)}.${1 + (m % 250)}`
          : labAddress(p * opts.members + m),
      port: opts.memberPort ?? 80,
      weight:
        opts.weightBump && opts.weightBump.pool === p && opts.weightBump.member === m ? opts.weightBump.weight : 1,
    })),
  }));
  const vips = Array.from({ length: opts.vips }, (_, v) => ({
    address: `198.51.${100 + Math.floor(v / 250)}.${1 + (v % 250)}`,
    port: 80,
    protocol: 'tcp',
    pool: `pool${v}`,
  }));
  return parseFleet({ hashSeed: 0x5eed, pools, vips });
}
