import type { FlowRun, FlowSample } from '@l4fleet/lab';
import { describe, expect, test } from 'vitest';
import { nodePauses } from './node-pauses.js';

const flow = (localPort: number, maxPauseMs: number, state: FlowSample['state'] = 'open'): FlowSample => ({
  id: localPort,
  protocol: 'tcp',
  localPort,
  localAddress: '198.18.1.2',
  target: '198.51.100.10:80',
  backend: undefined,
  state,
  replies: 1,
  maxPauseMs,
  openedAt: 0,
  backends: [],
});
const run = (flows: FlowSample[]) => ({ report: { flows } }) as unknown as FlowRun;

describe('nodePauses: the flows a node carried before a step against the others', () => {
  test('splits by the carrier before the step; flows not seen then, and closed flows, are in neither group', () => {
    const carried = new Map([
      ['tcp:1', 'node1'],
      ['tcp:2', 'node1'],
      ['tcp:3', 'node2'],
      ['tcp:5', 'node1'],
    ]);
    const flows = [flow(1, 120), flow(2, 900), flow(3, 60), flow(4, 5_000), flow(5, 7_000, 'broken')];
    expect(nodePauses(run(flows), carried, 'node1')).toEqual({ nodeFlows: 2, nodePauseMs: 900, othersPauseMs: 60 });
    expect(nodePauses(run(flows), carried, 'node2')).toEqual({ nodeFlows: 1, nodePauseMs: 60, othersPauseMs: 900 });
  });

  test('a node that carried nothing: 0 flows, pauses 0 (the callers require flows > 0)', () => {
    expect(nodePauses(run([flow(1, 40)]), new Map([['tcp:1', 'node2']]), 'node1')).toEqual({
      nodeFlows: 0,
      nodePauseMs: 0,
      othersPauseMs: 40,
    });
  });
});
