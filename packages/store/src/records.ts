/** Encoding of the small JSON records (health, decided, node status) and grouping of member keys by pool. */
import type { MemberStatus } from '@l4fleet/config';
import { StoreError } from './errors.js';

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

export interface PoolStatusRecord {
  readonly pool: string;
  readonly members: Readonly<Record<string, MemberStatus>>;
}

export function encodePoolStatus(pool: string, members: Readonly<Record<string, MemberStatus>>): string {
  return JSON.stringify({ pool, members } satisfies PoolStatusRecord);
}

export function checkPoolStatus(key: string, v: Partial<PoolStatusRecord>): PoolStatusRecord {
  if (typeof v.pool !== 'string' || typeof v.members !== 'object' || v.members === null) {
    throw new StoreError('INVALID_STATE', `${key}: not a {pool, members} record`);
  }
  for (const [m, s] of Object.entries(v.members)) {
    if (s !== 'up' && s !== 'down')
      throw new StoreError('INVALID_STATE', `${key}: members.${m}: ${JSON.stringify(s)} is not up | down`);
  }
  return v as PoolStatusRecord;
}
