/**
 * The aggregator's rule: a member's decided status is what a strict majority of the live nodes that observed it
 * report; a tie (or no report at all) keeps the previous decision. Each node's report already carries rise/fall
 * hysteresis; keeping the previous decision on a tie is the fleet-level hysteresis, so one node flapping or a
 * network split in half never flips a backend. No decision at all counts as up in tables (@l4fleet/config).
 */
import type { MemberStatus } from '@l4fleet/config';
import type { ObservedStatus } from '../health/hysteresis.js';

/** Per node: memberKey -> what that node observes. */
export type HealthReports = ReadonlyMap<string, ReadonlyMap<string, ObservedStatus | MemberStatus>>;

export function decideMember(
  observations: readonly (ObservedStatus | MemberStatus)[],
  previous: MemberStatus | undefined,
): MemberStatus | undefined {
  let up = 0;
  let down = 0;
  for (const o of observations) {
    if (o === 'up') up += 1;
    else if (o === 'down') down += 1;
  }
  const n = up + down;
  if (down * 2 > n) return 'down';
  if (up * 2 > n) return 'up';
  return previous;
}

/**
 * Decides every member in `members` from the reports of `liveNodes` (reports of nodes whose lease expired are
 * ignored: a dead node's last word must not hold a backend down). Returns only members with a decision.
 */
export function decideAll(
  members: Iterable<string>,
  reports: HealthReports,
  liveNodes: ReadonlySet<string>,
  previous: ReadonlyMap<string, MemberStatus>,
): Map<string, MemberStatus> {
  const live = [...reports].filter(([node]) => liveNodes.has(node)).map(([, r]) => r);
  const out = new Map<string, MemberStatus>();
  for (const key of members) {
    const obs: (ObservedStatus | MemberStatus)[] = [];
    for (const r of live) {
      const o = r.get(key);
      if (o !== undefined) obs.push(o);
    }
    const d = decideMember(obs, previous.get(key));
    if (d !== undefined) out.set(key, d);
  }
  return out;
}

/** The writes that turn `current` into `next`: changed or new decisions, and keys to delete. */
export function decisionDelta(
  current: ReadonlyMap<string, MemberStatus>,
  next: ReadonlyMap<string, MemberStatus>,
): { set: Map<string, MemberStatus>; remove: string[] } {
  const set = new Map<string, MemberStatus>();
  for (const [k, v] of next) if (current.get(k) !== v) set.set(k, v);
  const remove = [...current.keys()].filter((k) => !next.has(k));
  return { set, remove };
}
