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
import type { Logger } from 'pino';
import type { ApiObject } from './codec.js';
import { BgpError } from './errors.js';
import type { GobgpClient } from './gobgp-client.js';

/** gobgpd's name of the global table in policy assignments. */
export const GLOBAL_TABLE = 'global';
export const LEARNT_POLICY_NAME = 'l4fleet-reject-learnt';

/** The names of the policy's statements, which gobgpd keeps in one namespace beside the policies. */
export function learntStatementNames(): string[] {
  return (learntRoutesPolicy().statements as ApiObject[]).map((s) => String(s.name));
}

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
 * Is gobgpd's global import assignment (ListPolicyAssignment) exactly this policy, intact, with default ACCEPT? Any
 * other policy there (a hand edit) is replaced: with a default REJECT or a policy of its own it could drop our
 * routes. The assignment holds the policy object itself, not its name: after `gobgp policy del` it still lists the
 * deleted policy (gobgpd 3.10 checks only export assignments before a delete), so ListPolicy is checked as well.
 */
export function isLearntPolicyAssigned(assignment: ApiObject | undefined): boolean {
  const policies = (assignment?.policies ?? []) as ApiObject[];
  return (
    policies.length === 1 &&
    policies[0]?.name === LEARNT_POLICY_NAME &&
    isLearntPolicy(policies[0]) &&
    assignment?.default_action === 'ACCEPT'
  );
}

/**
 * Does `policy` (ListPolicy) hold exactly the statements of learntRoutesPolicy()? A policy of our name changed by
 * hand would be assigned as it is otherwise. That includes a condition or action added to a statement (`gobgp policy
 * statement l4fleet-reject-learnt-internal add condition prefix ...`): a prefix or neighbour set narrows the REJECT
 * and lets a router's table back into the global RIB.
 */
export function isLearntPolicy(policy: ApiObject | undefined): boolean {
  const shape = (p: ApiObject | undefined) =>
    JSON.stringify(
      ((p?.statements ?? []) as ApiObject[]).map((s) => [
        String(s.name),
        String(s.conditions?.route_type ?? ''),
        String(s.actions?.route_action ?? ''),
        onlyUnset(s.conditions, 'route_type') && onlyUnset(s.actions, 'route_action'),
      ]),
    );
  return policy !== undefined && shape(policy) === shape(learntRoutesPolicy());
}

/**
 * Is every field of a decoded Conditions or Actions but `kept` unset, as gobgpd reads it? An unset message is null
 * (proto-loader `defaults`; a set one, even empty, is an object), an unset list is empty, and rpki_result < 1 is no
 * RPKI condition (gobgpd's newRpkiValidationConditionFromApiStruct; its ListPolicy gives -1 when there is none).
 * Every other field must decode for this to see it: the subset holds all of gobgpd 3.10's Conditions and Actions.
 */
function onlyUnset(fields: ApiObject | undefined, kept: string): boolean {
  return Object.entries(fields ?? {}).every(
    ([name, value]) =>
      name === kept ||
      value === undefined ||
      value === null ||
      (Array.isArray(value) && value.length === 0) ||
      (name === 'rpki_result' && Number(value) < 1),
  );
}

/** The gobgpd calls ensureLearntPolicy makes. */
export type LearntPolicyClient = Pick<
  GobgpClient,
  | 'addPolicy'
  | 'deletePolicy'
  | 'deleteStatement'
  | 'getPolicy'
  | 'globalImportAssignment'
  | 'hasStatement'
  | 'setGlobalImportPolicy'
  | 'softResetIn'
>;

/**
 * Puts the policy in place as the global import policy, repairing any hand edit: a ListPolicyAssignment and a
 * ListPolicy when it is in place, and nothing else. Returns whether it changed anything.
 *
 * gobgpd keeps statements in a namespace of their own, and the gobgp CLI leaves them behind: `gobgp policy del P`
 * and `gobgp policy del P S` send PreserveStatements. AddPolicy refuses a statement name that exists ("statement
 * ... already defined"), so statements of our names left over are deleted first; one another policy still uses
 * (a hand edit) cannot be, and that failure is the caller's to report and retry.
 */
export async function ensureLearntPolicy(client: LearntPolicyClient, log: Logger): Promise<boolean> {
  const assigned = isLearntPolicyAssigned(await client.globalImportAssignment());
  const held = await client.getPolicy(LEARNT_POLICY_NAME);
  const intact = isLearntPolicy(held);
  if (assigned && intact) return false;
  if (!intact) {
    if (held) {
      // Changed by hand: unassign it (a gobgpd that checks import assignments refuses to delete a policy in use),
      // delete it with the statements no other policy uses, add ours again.
      await client.setGlobalImportPolicy([], 'ACCEPT');
      await client.deletePolicy(LEARNT_POLICY_NAME);
    }
    for (const name of learntStatementNames()) {
      if (await client.hasStatement(name)) await client.deleteStatement(name);
    }
    await client.addPolicy(learntRoutesPolicy());
  }
  // Also when the policy was intact: the assignment may hold a deleted policy object of our name (see above).
  await client.setGlobalImportPolicy([LEARNT_POLICY_NAME], 'ACCEPT');
  // Paths learnt before the policy (an older agent, a hand edit) leave the global RIB only when re-evaluated.
  await client.softResetIn();
  log.info({ event: 'importPolicySet', policy: LEARNT_POLICY_NAME });
  return true;
}

/**
 * Runs ensureLearntPolicy for the speaker, at setup and at each resync. A refusal (a hand edit it cannot undo, say
 * another policy using one of our statements) is logged once per run of failures and returns: the node still
 * announces, as it did before the policy existed, and the next call tries again. Only an unreachable gobgpd
 * (a retryable BgpError) is thrown, for the reconnect.
 */
export class LearntPolicyKeeper {
  private failing = false;

  constructor(
    private readonly client: LearntPolicyClient,
    private readonly log: Logger,
  ) {}

  async apply(): Promise<void> {
    try {
      await ensureLearntPolicy(this.client, this.log);
    } catch (err) {
      if (!(err instanceof BgpError) || err.retryable) throw err;
      if (!this.failing) {
        this.log.error({
          event: 'importPolicyFailed',
          policy: LEARNT_POLICY_NAME,
          err: err.message,
          code: err.code,
          reason: "routers' routes can enter gobgpd's RIB until it is repaired; tried again at each resync",
        });
      }
      this.failing = true;
      return;
    }
    if (this.failing) this.log.info({ event: 'importPolicyRecovered', policy: LEARNT_POLICY_NAME });
    this.failing = false;
  }
}
