import { describe, expect, test } from 'vitest';
import { isLearntPolicy, isLearntPolicyAssigned, LEARNT_POLICY_NAME, learntRoutesPolicy } from './learnt-policy.js';

describe('learnt-routes policy - what counts as in place', () => {
  const ours = { name: LEARNT_POLICY_NAME };
  test.each([
    [{ policies: [ours], default_action: 'ACCEPT' }, true],
    [undefined, false],
    [{ policies: [], default_action: 'NONE' }, false],
    // A default REJECT would drop our own routes (gobgpd runs the global import policy on local paths too).
    [{ policies: [ours], default_action: 'REJECT' }, false],
    [{ policies: [ours, { name: 'by-hand' }], default_action: 'ACCEPT' }, false],
    [{ policies: [{ name: 'by-hand' }], default_action: 'ACCEPT' }, false],
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
