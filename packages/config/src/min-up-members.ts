/**
 * When a pool's VIPs are announced: while at least `minUpMembers` of its members take new flows (F5's pool
 * `min-up-members`). The default, 1, is the rule every node had before the setting: announce while any member takes
 * new flows, never a blackhole (design note 0006).
 *
 * Why more than 1: the same anycast VIPs are often announced by more than one site (RFC 4786: a node that cannot
 * serve withdraws its route, and the routing system takes the traffic elsewhere). A site whose pool is down to 1 of
 * 10 members still attracts its whole share of the traffic by BGP and overloads the survivor; with `minUpMembers: 3`
 * every node of the site withdraws the pool's VIPs, and the routers send their traffic to the other sites. The tables
 * stay on the nodes, so flows that still arrive while the withdrawal spreads are forwarded as before.
 *
 * Derived from the fleet and the decided status only, like the tables, so every node of the site withdraws and
 * announces together.
 */
import { type Problems, showValue } from './fields.js';
import { MAX_MEMBERS_PER_POOL } from './limits.js';
import { type MemberRamps, NO_RAMPS } from './slow-start.js';
import { backupsServe, type DecidedStatus, effectiveWeight, tableMembers } from './table.js';
import type { Fleet, Member, Pool, Vip } from './types.js';
import { vipKey } from './vip-key.js';
import { vipServed } from './vip-state.js';

/** Announce while at least this many members take new flows: 1, i.e. while any does. */
export const DEFAULT_MIN_UP_MEMBERS = 1;

/**
 * Parses `pools[i].minUpMembers`: `{}` when absent or 1 (the default; not written back, so a fleet that does not use
 * it stays readable by nodes that predate it), else `{minUpMembers}`. More than the pool's members is refused: its
 * VIPs could never be announced.
 */
export function minUpMembersField(p: Problems, path: string, v: unknown, members: number): { minUpMembers?: number } {
  if (v === undefined || v === DEFAULT_MIN_UP_MEMBERS) return {};
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > MAX_MEMBERS_PER_POOL) {
    p.add(
      path,
      `${showValue(v)} is not a number of members (1-${MAX_MEMBERS_PER_POOL}: the pool's VIPs are announced while at least this many members take new flows)`,
    );
    return {};
  }
  if (members > 0 && v > members) {
    p.add(path, `${v} is more than the pool's ${members} members: its VIPs would never be announced`);
    return {};
  }
  return { minUpMembers: v };
}

/** The pool's setting (absent: 1). */
export function minUpMembersOf(pool: Pick<Pool, 'minUpMembers'>): number {
  return pool.minUpMembers ?? DEFAULT_MIN_UP_MEMBERS;
}

/**
 * The members that take new flows (effective weight above 0: active, not decided down, a backup only while the
 * backups serve, slow start counted as taking flows). The one count behind routes, `describe vip` and the dashboard.
 */
export function usableMembers(pool: Pool, decided: DecidedStatus, ramps: MemberRamps = NO_RAMPS): Member[] {
  const serving = backupsServe(pool, decided);
  return tableMembers(pool).filter((m) => effectiveWeight(pool, m, decided, ramps, serving) > 0);
}

/** Whether `usable` members taking new flows are enough for the pool's VIPs to be announced (never 0). */
export function enoughUp(pool: Pick<Pool, 'minUpMembers'>, usable: number): boolean {
  return usable > 0 && usable >= minUpMembersOf(pool);
}

/** `1 member takes new flows` / `2 members take new flows`: the count in the CLI's and explain's words. */
export function takingFlowsText(usable: number): string {
  return `${usable} ${usable === 1 ? 'member takes' : 'members take'} new flows`;
}

/** Why the pool's VIPs are withdrawn with `usable` members taking new flows, in people's words; undefined: they are not. */
export function belowMinUpText(pool: Pick<Pool, 'minUpMembers'>, usable: number): string | undefined {
  if (usable === 0) return 'no member takes new flows';
  if (enoughUp(pool, usable)) return undefined;
  return `only ${takingFlowsText(usable)}, fewer than the pool's minUpMembers ${minUpMembersOf(pool)}`;
}

/**
 * Why the fleet's rule has no node announce `vip` (disabled, its pool missing, no member or too few members taking new
 * flows), or undefined while every serving node announces it. The nodes' own state (drained, BGP) is not in it.
 * For many VIPs of one fleet use announcementRule: this walks the VIP's pool at every call.
 */
export function notAnnouncedReason(
  fleet: Fleet,
  vip: Vip,
  decided: DecidedStatus,
  ramps: MemberRamps = NO_RAMPS,
): string | undefined {
  return announcementRule(fleet, decided, ramps)(vip);
}

/**
 * notAnnouncedReason for the VIPs of one fleet under one decided status: each pool's members are counted once, at its
 * first VIP, not once per VIP (a walk per VIP was VIPs x members: 600 VIPs on a 100,000-member pool took 133 s).
 * Holds the counts: use it within one call, not across changes of `decided` or `ramps`.
 */
export function announcementRule(
  fleet: Fleet,
  decided: DecidedStatus,
  ramps: MemberRamps = NO_RAMPS,
): (vip: Vip) => string | undefined {
  const pools = new Map<string, Pool>();
  for (const p of fleet.pools) if (!pools.has(p.name)) pools.set(p.name, p);
  const usable = new Map<Pool, number>();
  return (vip) => {
    if (!vipServed(vip)) return 'the VIP is disabled';
    const pool = pools.get(vip.pool);
    if (!pool) return `its pool "${vip.pool}" does not exist`;
    let n = usable.get(pool);
    if (n === undefined) {
      n = usableMembers(pool, decided, ramps).length;
      usable.set(pool, n);
    }
    return belowMinUpText(pool, n);
  };
}

/** A VIP whose announcement a fleet change flips, by the fleet's rule (notAnnouncedReason). */
export interface AnnouncementChange {
  readonly vip: string;
  /** True: announced again; false: withdrawn, `reason` says why. */
  readonly announced: boolean;
  readonly reason?: string;
}

/**
 * The VIPs of both fleets that `after` withdraws or announces again under the same decided status: what an apply does
 * to the routes beyond the diff's own words (a raised minUpMembers, the last member drained). Added and removed VIPs
 * are the diff's.
 */
export function announcementChanges(
  before: Fleet | undefined,
  after: Fleet,
  decided: DecidedStatus,
  ramps: MemberRamps = NO_RAMPS,
): AnnouncementChange[] {
  if (!before) return [];
  const previous = new Map(before.vips.map((v) => [vipKey(v), v]));
  const wasRule = announcementRule(before, decided, ramps);
  const isRule = announcementRule(after, decided, ramps);
  const out: AnnouncementChange[] = [];
  for (const vip of after.vips) {
    const key = vipKey(vip);
    const old = previous.get(key);
    if (!old) continue;
    const was = wasRule(old) === undefined;
    const reason = isRule(vip);
    if (was && reason !== undefined) out.push({ vip: key, announced: false, reason });
    else if (!was && reason === undefined) out.push({ vip: key, announced: true });
  }
  return out;
}
