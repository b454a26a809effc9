/** Encoding of the pool status records (health, decided) and grouping of member keys by pool. */
import { type MemberRamp, type MemberStatus, memberKey } from '@l4fleet/config';
import { StoreError } from './errors.js';
import type { PoolStatusRecord } from './record-check.js';

/** `web/be1` -> ['web', 'be1']; pool names never contain `/`, so the first `/` splits. */
export function splitMemberKey(key: string): [string, string] {
  const i = key.indexOf('/');
  if (i <= 0 || i === key.length - 1) {
    throw new StoreError('INVALID_STATE', `member key: ${JSON.stringify(key)} is not POOL/MEMBER`);
  }
  return [key.slice(0, i), key.slice(i + 1)];
}

/** Groups `pool/member -> status` by pool, members sorted, so equal views encode to equal bytes. */
export function groupByPool(members: ReadonlyMap<string, MemberStatus>): Map<string, Record<string, MemberStatus>> {
  const pools = new Map<string, Record<string, MemberStatus>>();
  for (const key of [...members.keys()].sort()) {
    const [pool, member] = splitMemberKey(key);
    let rec = pools.get(pool);
    if (!rec) pools.set(pool, (rec = {}));
    rec[member] = members.get(key) as MemberStatus;
  }
  return pools;
}

/** `pool/member -> status` entries of a pool record, keyed with config's memberKey. */
export function memberEntries(rec: PoolStatusRecord): [string, MemberStatus][] {
  return Object.entries(rec.members).map(([member, s]) => [memberKey(rec.pool, member), s]);
}

/** `pool/member -> ramp` entries of a decided record (slow start). */
export function rampEntries(rec: PoolStatusRecord): [string, MemberRamp][] {
  return Object.entries(rec.ramp ?? {}).map(([member, r]) => [memberKey(rec.pool, member), r]);
}

/**
 * A pool's record; `ramp` (decided records only) is written only when a member ramps, members sorted, so equal
 * views encode to equal bytes and records without ramps stay what older nodes read.
 */
export function encodePoolStatus(
  pool: string,
  members: Readonly<Record<string, MemberStatus>>,
  ramp?: Readonly<Record<string, MemberRamp>>,
): string {
  const rec: PoolStatusRecord = ramp && Object.keys(ramp).length > 0 ? { pool, members, ramp } : { pool, members };
  return JSON.stringify(rec);
}

/**
 * The ramps grouped by pool, like groupByPool. A ramp of a member decided `down` is an error of the writer (a node
 * would refuse the record); a member with no decision yet may ramp (it counts as up, and pools with health check
 * `none` have no decisions).
 */
export function groupRampsByPool(
  decided: ReadonlyMap<string, MemberStatus>,
  ramps: ReadonlyMap<string, MemberRamp>,
): Map<string, Record<string, MemberRamp>> {
  const pools = new Map<string, Record<string, MemberRamp>>();
  for (const key of [...ramps.keys()].sort()) {
    if (decided.get(key) === 'down') {
      throw new StoreError('INVALID_STATE', `ramp of ${JSON.stringify(key)}: the member is decided down`);
    }
    const [pool, member] = splitMemberKey(key);
    let rec = pools.get(pool);
    if (!rec) pools.set(pool, (rec = {}));
    const r = ramps.get(key) as MemberRamp;
    rec[member] = { percent: r.percent, sinceMs: r.sinceMs };
  }
  return pools;
}

/**
 * Every pool's decided record: its decisions and its ramps (a pool may have ramps and no decision), and a record
 * for each of `alsoPools` even when it has neither (a pool whose last ramp ended keeps no stale ramp).
 */
export function encodeDecidedPools(
  decided: ReadonlyMap<string, MemberStatus>,
  ramps: ReadonlyMap<string, MemberRamp>,
  alsoPools: Iterable<string> = [],
): Map<string, string> {
  const members = groupByPool(decided);
  const ramping = groupRampsByPool(decided, ramps);
  const out = new Map<string, string>();
  for (const pool of new Set([...members.keys(), ...ramping.keys(), ...alsoPools])) {
    out.set(pool, encodePoolStatus(pool, members.get(pool) ?? {}, ramping.get(pool)));
  }
  return out;
}
