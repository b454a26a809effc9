/**
 * The aggregator's rule: a member is decided down when a strict majority of the live nodes report it down (a node
 * that does not know yet, restarting or without a record, counts against), up when a strict majority of the live
 * nodes that observed it report it up; otherwise (a tie, or no report at all) the previous decision is kept. Each
 * node's report already carries rise/fall hysteresis; keeping the previous decision on a tie is the fleet-level
 * hysteresis, so one node flapping or a network split in half never flips a backend. Counting only the nodes that
 * observed for down let one node with a bad path take members down while the others were unknown: in a pair, a
 * restart of the good node was enough, and the tie after it kept them down. Up needs no more than observers, like
 * no decision at all, which counts as up in tables (@l4fleet/config): a fresh fleet serves at once.
 */
import type { MemberStatus } from '@l4fleet/config';
import type { ObservedStatus } from '../health/hysteresis.js';

/** Per node: memberKey -> what that node observes. */
export type HealthReports = ReadonlyMap<string, ReadonlyMap<string, ObservedStatus | MemberStatus>>;

/** `observations`: one per live node that reports the member; `liveNodes`: how many live nodes there are. */
export function decideMember(
  observations: readonly (ObservedStatus | MemberStatus)[],
  previous: MemberStatus | undefined,
  liveNodes: number,
): MemberStatus | undefined {
  let up = 0;
  let down = 0;
  for (const o of observations) {
    if (o === 'up') up += 1;
    else if (o === 'down') down += 1;
  }
  if (down * 2 > Math.max(liveNodes, up + down)) return 'down';
  if (up * 2 > up + down) return 'up';
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
    const d = decideMember(obs, previous.get(key), liveNodes.size);
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
