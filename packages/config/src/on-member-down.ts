/**
 * The fleet file's `onMemberDown` setting of a pool: what the data plane does with the remembered flows (Maglev §3.3
 * connection tracking) of a member decided down by its health checks.
 *
 * `keep` (the default, and the behaviour before the setting existed): health decides only the slots. A member that
 * fails its checks gets no new flows, and the flows it was given stay on it until they end or idle out, so a member
 * that fails a check but still serves keeps its connections. A UDP client that keeps sending from one port (syslog,
 * SIP, RADIUS) then stays on a dead member until it pauses for the flow timeout.
 * `reselect`: the member's remembered flows are placed by the table again at their next packet (the table no longer
 * gives it slots, so they reach a live member): UDP flows continue there, TCP ones get a reset from the new member
 * instead of silence. It is F5's "action on service down: reselect". A member coming back up gets the flows the
 * table gives it; the flows that moved away stay where they went.
 * `draining` members are not down: their flows stay in both modes (that is what draining is for).
 */
import { type Problems, showValue } from './fields.js';
import type { Forwarding, OnMemberDown, Pool } from './types.js';

export const ON_MEMBER_DOWN: readonly OnMemberDown[] = ['keep', 'reselect'];
export const DEFAULT_ON_MEMBER_DOWN: OnMemberDown = 'keep';

/**
 * Parses `pools[i].onMemberDown`: `{}` when absent (the default, not written back, so a fleet that does not use the
 * setting stays readable by nodes that predate it), else `{onMemberDown}`. `reselect` needs a data plane that owns
 * the flow table: with `nat`, conntrack does, and the setting is refused.
 */
export function onMemberDownField(
  p: Problems,
  path: string,
  v: unknown,
  forwarding: Forwarding,
): { onMemberDown?: OnMemberDown } {
  if (v === undefined) return {};
  if (typeof v !== 'string' || !(ON_MEMBER_DOWN as readonly string[]).includes(v)) {
    p.add(path, `${showValue(v)} is not one of ${ON_MEMBER_DOWN.join(' | ')}`);
    return {};
  }
  if (v === 'reselect' && forwarding === 'nat') {
    p.add(path, `"reselect" is not supported with forwarding "nat" (its flows are conntrack entries); use "keep"`);
    return {};
  }
  return { onMemberDown: v as OnMemberDown };
}

/** The pool's setting (absent: `keep`). */
export function onMemberDownOf(pool: Pick<Pool, 'onMemberDown'>): OnMemberDown {
  return pool.onMemberDown ?? DEFAULT_ON_MEMBER_DOWN;
}
