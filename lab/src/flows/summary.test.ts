import { describe, expect, test } from 'vitest';
import { disruptionTable, flowKey, summarize } from './summary.js';
import type { FlowSample, WorkerReport } from './types.js';

function flow(id: number, over: Partial<FlowSample>): FlowSample {
  return {
    id,
    protocol: 'tcp',
    localPort: 40000 + id,
    localAddress: '198.18.1.2',
    target: '198.51.100.10:80',
    backend: 'backend1',
    state: 'open',
    replies: 10,
    maxPauseMs: 50,
    openedAt: 1_000,
    backends: ['backend1'],
    ...over,
  };
}

describe('lab flows - summary', () => {
  const report: WorkerReport = {
    at: 9_000,
    markAt: 5_000,
    flows: [
      flow(1, { backend: 'backend1' }),
      flow(2, { backend: 'backend2', maxPauseMs: 3_100 }),
      flow(3, { backend: 'backend2', openedAt: 6_000 }),
      flow(4, { protocol: 'udp', backend: 'backend3', openedAt: 6_000 }),
      flow(5, { state: 'broken', reason: 'reset', backend: 'backend1' }),
    ],
  };
  const carriers = new Map([
    [flowKey('tcp', 40001), 'node1'],
    [flowKey('tcp', 40002), 'node2'],
    [flowKey('tcp', 40003), 'node2'],
    [flowKey('udp', 40004), 'node3'],
  ]);

  test('counts open flows per node and backend, broken flows apart, new flows since the mark', () => {
    const s = summarize(report, carriers);
    expect(s).toMatchObject({ total: 5, open: 4, broken: 1, longestPauseMs: 3_100 });
    expect(s.perNode).toEqual({ node1: 1, node2: 2, node3: 1 });
    expect(s.perBackend).toEqual({ backend1: 1, backend2: 2, backend3: 1 });
    expect(s.newFlows).toEqual({ total: 2, perNode: { node2: 1, node3: 1 }, perBackend: { backend2: 1, backend3: 1 } });
    expect(s.brokenFlows).toEqual([{ id: 5, protocol: 'tcp', localPort: 40005, reason: 'reset', backend: 'backend1' }]);
  });

  // New flows were told by openedAt >= markAt, two wall-clock readings: an NTP step back after a mark made the
  // flows opened after it look older (not counted), a step forward counted old ones. The worker now says which.
  test('new flows are the ones the worker says opened after its mark, whatever the wall clock did', () => {
    const stepped: WorkerReport = {
      at: 9_000,
      markAt: 5_000,
      flows: [
        flow(1, { openedAt: 6_000, sinceMark: false }), // before the mark; the clock stepped back since
        flow(2, { backend: 'backend2', openedAt: 2_000, sinceMark: true }), // after the mark, stamped after a step back
      ],
    };
    expect(summarize(stepped, new Map()).newFlows.total).toBe(1);
    expect(summarize(stepped, new Map()).newFlows.perBackend).toEqual({ backend2: 1 });
  });

  test('a flow no node reported is counted under ?', () => {
    expect(summarize(report, new Map()).perNode).toEqual({ '?': 4 });
  });

  test('the disruption table names the step, the figures and each broken flow', () => {
    const text = disruptionTable('kill node2', summarize(report, carriers));
    expect(text).toContain('== kill node2');
    expect(text).toContain('broken 1  longest pause 3100 ms');
    expect(text).toMatch(/node\s+node2\s+2\s+50\.0%\s+1\s+50\.0%/);
    expect(text).toContain('broken     tcp:40005 (reset, was backend1)');
  });
});
