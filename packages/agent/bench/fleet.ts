/** Bench fleets: `vips` VIPs, each with its own pool of `members` members. */
import { type Fleet, parseFleet } from '@l4fleet/config';

export function benchFleet(opts: {
  vips: number;
  members: number;
  check?: 'none' | 'tcp';
  memberPort?: number;
  weightBump?: { pool: number; member: number; weight: number };
}): Fleet {
  const pools = Array.from({ length: opts.vips }, (_, p) => ({
    name: `pool${p}`,
    healthCheck: opts.check === 'tcp' ? { type: 'tcp', intervalMs: 2_000, timeoutMs: 1_000 } : { type: 'none' },
    members: Array.from({ length: opts.members }, (_, m) => ({
      name: `p${p}-m${m}`,
      // 10.<p>.<m/256>.<m%256>, or loopback addresses for probed members (Linux answers all of 127/8 on lo)
      address:
        opts.check === 'tcp'
          ? `127.${1 + p}.${Math.floor(m / 250)}.${1 + (m % 250)}`
          : `10.${p % 256}.${Math.floor(m / 256)}.${m % 256}`,
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
