import { pino } from 'pino';
import { describe, expect, test } from 'vitest';
import { BgpError } from './errors.js';
import {
  isLearntPolicy,
  isLearntPolicyAssigned,
  LEARNT_POLICY_NAME,
  type LearntPolicyClient,
  LearntPolicyKeeper,
  learntRoutesPolicy,
} from './learnt-policy.js';

describe('learnt-routes policy - what counts as in place', () => {
  const ours = learntRoutesPolicy();
  const accepting = learntRoutesPolicy();
  accepting.statements[0].actions = { route_action: 'ACCEPT' };
  test.each([
    [{ policies: [ours], default_action: 'ACCEPT' }, true],
    [undefined, false],
    [{ policies: [], default_action: 'NONE' }, false],
    // A default REJECT would drop our own routes (gobgpd runs the global import policy on local paths too).
    [{ policies: [ours], default_action: 'REJECT' }, false],
    [{ policies: [ours, { name: 'by-hand' }], default_action: 'ACCEPT' }, false],
    [{ policies: [{ name: 'by-hand' }], default_action: 'ACCEPT' }, false],
    // The assignment holds the policy object: a changed one of our name there is not ours.
    [{ policies: [accepting], default_action: 'ACCEPT' }, false],
    [{ policies: [{ name: LEARNT_POLICY_NAME }], default_action: 'ACCEPT' }, false],
  ])('assignment %j: %s', (assignment, inPlace) => {
    expect(isLearntPolicyAssigned(assignment)).toBe(inPlace);
  });

  test('the policy rejects routes of both types learnt from peers, and only those', () => {
    expect(learntRoutesPolicy().statements).toEqual([
      expect.objectContaining({
        conditions: { route_type: 'ROUTE_TYPE_INTERNAL' },
        actions: { route_action: 'REJECT' },
      }),
      expect.objectContaining({
        conditions: { route_type: 'ROUTE_TYPE_EXTERNAL' },
        actions: { route_action: 'REJECT' },
      }),
    ]);
    expect(isLearntPolicy(learntRoutesPolicy())).toBe(true);
    expect(isLearntPolicy(undefined)).toBe(false);
    const accepting = learntRoutesPolicy();
    accepting.statements[1].actions = { route_action: 'ACCEPT' };
    expect(isLearntPolicy(accepting)).toBe(false);
    const local = learntRoutesPolicy();
    local.statements[0].conditions = { route_type: 'ROUTE_TYPE_LOCAL' };
    expect(isLearntPolicy(local)).toBe(false);
  });
});

describe('learnt-routes policy - a refusal blocks nothing and is logged once', () => {
  /** gobgpd with our policy deleted by hand and one of its statements held by another policy. */
  function stuckGobgpd(refusal: BgpError) {
    let added = false;
    const client = {
      globalImportAssignment: async () => ({ policies: [learntRoutesPolicy()], default_action: 'ACCEPT' }),
      getPolicy: async () => (added ? learntRoutesPolicy() : undefined),
      hasStatement: async () => true,
      deleteStatement: async () => {
        throw refusal;
      },
      addPolicy: async () => {
        added = true;
      },
      deletePolicy: async () => undefined,
      setGlobalImportPolicy: async () => undefined,
      softResetIn: async () => undefined,
    } satisfies LearntPolicyClient;
    return client;
  }

  test('a refusal resolves, logged once per run of failures; recovery logged', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
    const inUse = new BgpError('GOBGP_REJECTED', 'gobgpd DeleteStatement x: rejected (in use)');
    const client: LearntPolicyClient = stuckGobgpd(inUse);
    const keeper = new LearntPolicyKeeper(client, log);
    for (let i = 0; i < 3; i++) await keeper.apply();
    expect(lines.filter((l) => l.event === 'importPolicyFailed')).toHaveLength(1);
    client.deleteStatement = async () => undefined;
    await keeper.apply();
    await keeper.apply();
    expect(lines.map((l) => l.event)).toEqual(['importPolicyFailed', 'importPolicySet', 'importPolicyRecovered']);
  });

  test('an unreachable gobgpd is thrown, for the reconnect', async () => {
    const gone = new BgpError('UNAVAILABLE', 'gobgpd DeleteStatement x: unreachable', { retryable: true });
    const keeper = new LearntPolicyKeeper(stuckGobgpd(gone), pino({ level: 'silent' }));
    await expect(keeper.apply()).rejects.toBe(gone);
  });
});
