/**
 * The global import policy that keeps routes learnt from neighbours out of gobgpd's global RIB.
 *
 * The balancer only announces; it never needs its routers' routes. Without this policy gobgpd put every path a
 * router sent (a full table is ~1M) into the global RIB, and every reconcile (each setter, each resync) listed and
 * decoded all of them to find its own few: past the call deadline gobgpd counted as unreachable and VIP changes
 * were never applied. gobgpd also passed one router's routes on to the other routers (transit through the node).
 *
 * The condition is the route type, not a neighbour set: gobgpd 3.10 runs the global import policy on local paths
 * too (AddPath, no source), and a NEIGHBOR set that is empty (no peers yet) matches every path, ours included.
 * ROUTE_TYPE_INTERNAL/EXTERNAL match only paths with a source (table.Path.IsLocal() false), so our own VIP routes
 * always pass, and the default is ACCEPT. The routers' paths stay in gobgpd's Adj-RIB-In (the peer's `received`
 * count) but reach neither the global RIB nor ListPath.
 */
import type { ApiObject } from './codec.js';

/** gobgpd's name of the global table in policy assignments. */
export const GLOBAL_TABLE = 'global';
export const LEARNT_POLICY_NAME = 'l4fleet-reject-learnt';

/** The policy: two statements, iBGP-learnt and eBGP-learnt paths, each REJECT. */
export function learntRoutesPolicy(): ApiObject {
  const reject = (name: string, routeType: string) => ({
    name: `${LEARNT_POLICY_NAME}-${name}`,
    conditions: { route_type: routeType },
    actions: { route_action: 'REJECT' },
  });
  return {
    name: LEARNT_POLICY_NAME,
    statements: [reject('internal', 'ROUTE_TYPE_INTERNAL'), reject('external', 'ROUTE_TYPE_EXTERNAL')],
  };
}

/**
 * Is gobgpd's global import assignment (ListPolicyAssignment) exactly this policy with default ACCEPT? Any other
 * policy there (a hand edit) is replaced: with a default REJECT or a policy of its own it could drop our routes.
 */
export function isLearntPolicyAssigned(assignment: ApiObject | undefined): boolean {
  const names = ((assignment?.policies ?? []) as ApiObject[]).map((p) => String(p.name));
  return names.length === 1 && names[0] === LEARNT_POLICY_NAME && assignment?.default_action === 'ACCEPT';
}

/**
 * Does `policy` (ListPolicy) hold exactly the statements of learntRoutesPolicy()? A policy of our name changed by
 * hand would be assigned as it is otherwise.
 */
export function isLearntPolicy(policy: ApiObject | undefined): boolean {
  const shape = (p: ApiObject | undefined) =>
    JSON.stringify(
      ((p?.statements ?? []) as ApiObject[]).map((s) => [
        String(s.name),
        String(s.conditions?.route_type ?? ''),
        String(s.actions?.route_action ?? ''),
      ]),
    );
  return policy !== undefined && shape(policy) === shape(learntRoutesPolicy());
}
