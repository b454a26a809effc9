import { parseLabFlows } from '@l4fleet/dashboard';
import { describe, expect, test } from 'vitest';
import { LAB_FLOWS_SUBJECT, labFlowsOf } from './publish.js';
import type { WatchTick } from './watch.js';

const tick: WatchTick = {
  at: '2026-12-02T13:00:00.000Z',
  summary: {
    at: 0,
    total: 3,
    open: 2,
    broken: 1,
    perNode: { node1: 2 },
    perBackend: { be1: 1, be2: 1 },
    longestPauseMs: 640,
    newFlows: { total: 0, perNode: {}, perBackend: {} },
    brokenFlows: [{ id: 3, protocol: 'tcp', localPort: 40_000, reason: 'reset' }],
  },
  nextHops: ['node1'],
  events: [],
  nodes: ['node1', 'node2'],
  backends: ['be1', 'be2'],
  down: ['node2'],
};

describe('lab watch on the dashboard', () => {
  test('publish - a tick becomes a message the dashboard accepts, with the same figures', () => {
    const text = JSON.stringify(labFlowsOf('lab', tick));
    expect(parseLabFlows(text)).toEqual({
      lab: 'lab',
      at: tick.at,
      total: 3,
      open: 2,
      broken: 1,
      longestPauseMs: 640,
      perNode: { node1: 2 },
      perBackend: { be1: 1, be2: 1 },
      nodes: ['node1', 'node2'],
      backends: ['be1', 'be2'],
      down: ['node2'],
      nextHops: ['node1'],
    });
    expect(LAB_FLOWS_SUBJECT).toBe('l4fleet.default.lab.flows');
  });
});
