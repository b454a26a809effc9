/** Encoding of the pool status records (health, decided) and grouping of member keys by pool. */
import { type MemberStatus, memberKey } from '@l4fleet/config';
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

export function encodePoolStatus(pool: string, members: Readonly<Record<string, MemberStatus>>): string {
  return JSON.stringify({ pool, members } satisfies PoolStatusRecord);
}
