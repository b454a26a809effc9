/**
 * Rules over a fleet that is valid in form: values that parse but cannot work. Each would otherwise be accepted by
 * `apply` and fail later, far from the file (nodes refusing the whole state, a health check that never passes, a
 * VIP no client can reach). fleetSemanticProblems() holds everywhere and runs in parseFleet() once the per-field
 * checks passed, so indices match the file. directReturnProblems() holds for the kernel data planes (nftables,
 * eBPF: direct server return, and nftables' nat, which cannot reach a loopback member either) but not for the
 * userspace proxy, which connects to members itself (loopback backends and other ports work there): the CLI checks it
 * at apply unless told the fleet is proxy-only.
 */

import { healthCheckPath, healthChecksOf } from './additional-health-checks.js';
import { isLoopback, unusableAddress } from './address-use.js';
import type { ConfigProblem } from './errors.js';
import { healthCheckProblems, probesTcp } from './health-check.js';
import { natAddressProblems } from './profile.js';
import type { Fleet, Pool, Vip } from './types.js';
import { vipKey } from './vip-key.js';

/**
 * Every forwarding mode (l2, ipip, gre, gue) is direct server return: the packet reaches the member unchanged, so
 * it must listen on the VIP's port. The first mismatch of each VIP is reported, with how many more there are.
 */
function portProblems(vip: Vip, vipIndex: number, pool: Pool, poolIndex: number): ConfigProblem[] {
  let first = -1;
  let count = 0;
  pool.members.forEach((m, j) => {
    if (m.port === vip.port) return;
    if (first < 0) first = j;
    count += 1;
  });
  if (first < 0) return [];
  const m = pool.members[first];
  const more = count > 1 ? ` (and ${count - 1} more members of pool "${pool.name}")` : '';
  return [
    {
      path: `pools[${poolIndex}].members[${first}].port`,
      message: `${m?.port} differs from the port of vips[${vipIndex}] ${vipKey(vip)}: forwarding ${pool.forwarding} (direct server return) does not rewrite ports${more}`,
    },
  ];
}

/**
 * A check of the wrong transport on the VIP's own port cannot pass unless the member also serves that transport
 * there; an explicit `healthCheck.port` says it does (e.g. a DNS server's TCP 53 behind a UDP VIP is fine either way,
 * so `tcp` is always accepted).
 */
function transportProblems(vip: Vip, vipIndex: number, pool: Pool, poolIndex: number): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  healthChecksOf(pool).forEach((hc, c) => {
    if (hc.port !== undefined) return;
    // A DNS server answers UDP and TCP on one port (RFC 7766 §5), so `dns` fits either VIP.
    const wrong = (probesTcp(hc.type) && vip.protocol === 'udp') || (hc.type === 'udp' && vip.protocol === 'tcp');
    if (!wrong) return;
    const probes = probesTcp(hc.type) ? 'TCP' : 'UDP';
    const at = healthCheckPath(poolIndex, c);
    out.push({
      path: `${at}.type`,
      message: `"${hc.type}" probes ${probes} on the member's port but vips[${vipIndex}] ${vipKey(vip)} is ${vip.protocol}: set ${at.slice(at.indexOf('.') + 1)}.port to where the member answers ${hc.type}, or use type ${vip.protocol === 'udp' ? 'udp' : 'tcp'}`,
    });
  });
  return out;
}

/**
 * A check's own `address` must be one every node can probe and that says something of the pool: not one a router
 * does not forward (as a member), not loopback (each node would probe itself), not a VIP (the balancers themselves).
 */
function checkAddressProblems(address: string, path: string, vipAddresses: ReadonlySet<string>): ConfigProblem[] {
  const why = unusableAddress(address, 'member');
  if (why) return [{ path, message: `"${address}" is ${why}` }];
  if (isLoopback(address))
    return [{ path, message: `"${address}" is a loopback address: every node would probe itself, not the pool's` }];
  if (vipAddresses.has(address))
    return [{ path, message: `"${address}" is a VIP of this fleet: the nodes would probe themselves, not the pool` }];
  return [];
}

/** Problems of a fleet whose fields are each valid (see parseFleet); empty when it can work. */
export function fleetSemanticProblems(fleet: Fleet): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  const poolIndex = new Map<string, number>();
  const vipAddresses = new Set(fleet.vips.map((v) => v.address));
  fleet.pools.forEach((pool, i) => {
    poolIndex.set(pool.name, i);
    healthChecksOf(pool).forEach((hc, c) => {
      out.push(...healthCheckProblems(hc, healthCheckPath(i, c)));
      if (hc.address !== undefined)
        out.push(...checkAddressProblems(hc.address, `${healthCheckPath(i, c)}.address`, vipAddresses));
    });
    pool.members.forEach((m, j) => {
      const why = unusableAddress(m.address, 'member');
      if (why) out.push({ path: `pools[${i}].members[${j}].address`, message: `"${m.address}" is ${why}` });
      else if (vipAddresses.has(m.address)) {
        out.push({
          path: `pools[${i}].members[${j}].address`,
          message: `"${m.address}" is a VIP of this fleet: the balancers would forward to themselves`,
        });
      }
    });
  });
  const transportSeen = new Set<number>();
  fleet.vips.forEach((vip, k) => {
    const why = unusableAddress(vip.address, 'vip');
    if (why) out.push({ path: `vips[${k}].address`, message: `"${vip.address}" is ${why}` });
    const i = poolIndex.get(vip.pool);
    const pool = i === undefined ? undefined : fleet.pools[i];
    if (i === undefined || !pool) return;
    if (!transportSeen.has(i)) {
      const t = transportProblems(vip, k, pool, i);
      if (t.length > 0) transportSeen.add(i);
      for (const p of t) out.push(p);
    }
  });
  const natPools = new Set(fleet.pools.filter((p) => p.forwarding === 'nat').map((p) => p.name));
  if (natPools.size > 0) out.push(...natAddressProblems(fleet.vips, natPools));
  return out;
}

/**
 * Rules of direct server return (nftables and eBPF data planes, every forwarding mode): the packet reaches the
 * member unchanged, so the member listens on the VIP's port and is another host (a loopback member would be the
 * node itself). The nodes refuse the whole state otherwise; the CLI says it at apply instead. A loopback member is
 * refused under `nat` too, for its own reason: the DNAT happens in prerouting, and the kernel drops a packet that came
 * in on another interface and now goes to loopback (IPv4 without route_localnet; IPv6 always).
 */
export function directReturnProblems(fleet: Fleet): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  const poolIndex = new Map(fleet.pools.map((p, i) => [p.name, i]));
  fleet.pools.forEach((pool, i) => {
    const why =
      pool.forwarding === 'nat'
        ? 'forwarding nat rewrites the destination in prerouting, and the kernel drops a packet from another interface rewritten to loopback (a martian destination)'
        : 'with direct server return that is the node itself';
    pool.members.forEach((m, j) => {
      if (isLoopback(m.address)) {
        out.push({
          path: `pools[${i}].members[${j}].address`,
          message: `"${m.address}" is a loopback address: ${why}`,
        });
      }
    });
  });
  fleet.vips.forEach((vip, k) => {
    const i = poolIndex.get(vip.pool);
    const pool = i === undefined ? undefined : fleet.pools[i];
    // NAT rewrites the destination port: a member may listen on another port than the VIP's (design note 0012).
    if (i === undefined || !pool || pool.forwarding === 'nat') return;
    for (const p of portProblems(vip, k, pool, i)) out.push(p);
  });
  return out;
}
