import { describe, expect, test } from 'vitest';
import { labFlowsSubject, parseLabFlows } from './lab-flows.js';

const good = {
  lab: 'lab',
  at: '2026-12-02T13:00:00.000Z',
  total: 250,
  open: 249,
  broken: 1,
  longestPauseMs: 721,
  perNode: { node1: 120, node2: 129 },
  perBackend: { be1: 60, be2: 189 },
  nodes: ['node1', 'node2', 'node3'],
  backends: ['be1', 'be2'],
  down: ['node3'],
  nextHops: ['node1', 'node2'],
};

describe('lab flows', () => {
  test('lab flows - a tick of lab watch is read as it was sent', () => {
    expect(parseLabFlows(JSON.stringify(good))).toEqual(good);
  });

  test('lab flows - the subject has four tokens (the agents event filter has five)', () => {
    expect(labFlowsSubject('l4fleet', 'default')).toBe('l4fleet.default.lab.flows');
  });

  test.each([
    ['nope', /^lab flows: not JSON/],
    ['[]', /^lab flows: message: \[\] is not an object/],
    [JSON.stringify({ ...good, at: 'yesterday' }), /^lab flows: at: "yesterday" is not an ISO time/],
    [JSON.stringify({ ...good, broken: -1 }), /^lab flows: broken: -1 is not a count/],
    [JSON.stringify({ ...good, perNode: { node1: 'x' } }), /^lab flows: perNode\.node1: "x" is not a count/],
    [JSON.stringify({ ...good, nodes: ['node1', 7] }), /^lab flows: nodes\[1\]: 7 is not a name/],
    [JSON.stringify({ ...good, lab: undefined }), /^lab flows: lab: undefined is not a name/],
    [JSON.stringify({ ...good, down: 'node3' }), /^lab flows: down: "node3" is not a list/],
  ])('lab flows - %s is refused naming the field and the value', (text, message) => {
    expect(() => parseLabFlows(text)).toThrow(
      expect.objectContaining({ code: 'BAD_REQUEST', message: expect.stringMatching(message) }),
    );
  });
});
