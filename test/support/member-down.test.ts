import { describe, expect, test } from 'vitest';
import { memberDownRecord } from './member-down.js';

const MEMBER = 'web/backend3';
const NODES = ['node1', 'node2', 'node3'];

/** An agentTimeline line: "+ms node event {detail}". */
const line = (ms: number, node: string, event: string, detail: Record<string, unknown>) =>
  `+${ms} ms ${node} ${event} ${JSON.stringify(detail)}`;
const observed = (ms: number, node: string) =>
  line(ms, node, 'memberObserved', { component: 'health', member: MEMBER, status: 'down', reason: 'refused' });
const decided = (ms: number, node: string) =>
  line(ms, node, 'memberDecided', { component: 'aggregator', member: MEMBER, status: 'down' });
const applied = (ms: number, node: string, slotsChanged: number) =>
  line(ms, node, 'tablesApplied', { component: 'serve', vips: 4, slotsChanged, revision: 41, ms: 12 });

describe('memberDownRecord: the decision and each node applying it, from the agents own record', () => {
  test('a run as measured (2026-12-07): nodes apply 1-3 ms before the decided line and up to +50 ms after it', () => {
    const timeline = [
      observed(897, 'node1'),
      observed(905, 'node2'),
      observed(911, 'node3'),
      applied(2189, 'node2', 1_364),
      applied(2191, 'node3', 1_364),
      decided(2192, 'node1'),
      applied(2234, 'node1', 1_364),
    ].join('\n');
    expect(memberDownRecord(timeline, MEMBER, NODES)).toEqual({
      observedMs: 897,
      decidedMs: 2192,
      appliedMs: { node1: 2234, node2: 2189, node3: 2191 },
    });
  });

  test('an apply that changed no slot, or one long before the decision, is not the member leaving the tables', () => {
    const timeline = [
      observed(900, 'node1'),
      // node3: only an unrelated apply (0 slots: say a health check's interval) 700 ms before the decision
      applied(1500, 'node3', 0),
      // node2: a slot change of another pool 600 ms before it (outside the 500 ms the decided line may lag)
      applied(1600, 'node2', 512),
      decided(2200, 'node1'),
      applied(2240, 'node1', 1_364),
      applied(2260, 'node2', 0),
    ].join('\n');
    expect(memberDownRecord(timeline, MEMBER, NODES).appliedMs).toEqual({
      node1: 2240,
      node2: undefined,
      node3: undefined,
    });
  });

  test('the window: from the decision - 500 ms to the decision + 1 s, both ends in; the last apply in it counts', () => {
    const timeline = [
      applied(1699, 'node1', 10),
      applied(1700, 'node2', 10),
      decided(2200, 'node1'),
      applied(2300, 'node2', 10),
      applied(3200, 'node3', 10),
      applied(3201, 'node2', 10),
    ].join('\n');
    expect(memberDownRecord(timeline, MEMBER, NODES)).toEqual({
      observedMs: undefined,
      decidedMs: 2200,
      appliedMs: { node1: undefined, node2: 2300, node3: 3200 },
    });
  });

  test('no decision "down" of the member (another member, or "up"): no node applied it', () => {
    const timeline = [
      line(2000, 'node1', 'memberDecided', { member: 'web/backend2', status: 'down' }),
      line(2100, 'node1', 'memberDecided', { member: MEMBER, status: 'up' }),
      applied(2150, 'node1', 1_364),
    ].join('\n');
    expect(memberDownRecord(timeline, MEMBER, NODES)).toEqual({
      observedMs: undefined,
      decidedMs: undefined,
      appliedMs: { node1: undefined, node2: undefined, node3: undefined },
    });
  });
});
