import { describe, expect, test } from 'vitest';
import { DashboardError } from './errors.js';
import { createTimeline, MAX_AGENT_EVENT_CHARS, parseAgentEvent, TIMELINE_MAX_CHARS } from './timeline.js';

const event = (o: Record<string, unknown> = {}) =>
  JSON.stringify({
    fleet: 'default',
    kind: 'vip.announced',
    node: 'lb1.dc1',
    at: '2026-12-06T14:00:00.000Z',
    seq: 7,
    data: { vip: '198.51.100.10:80/tcp', prefix: '198.51.100.10/32', nextHop: '198.18.0.11' },
    ...o,
  });

function refusal(text: string): DashboardError {
  try {
    parseAgentEvent(text);
  } catch (err) {
    expect(err).toBeInstanceOf(DashboardError);
    return err as DashboardError;
  }
  throw new Error('expected the event to be refused');
}

describe('dashboard timeline - parseAgentEvent', () => {
  test('an agent event becomes a timeline entry', () => {
    expect(parseAgentEvent(event())).toEqual({
      kind: 'vip.announced',
      node: 'lb1.dc1',
      at: '2026-12-06T14:00:00.000Z',
      data: { vip: '198.51.100.10:80/tcp', prefix: '198.51.100.10/32', nextHop: '198.18.0.11' },
    });
    expect(parseAgentEvent(event({ data: undefined })).data).toEqual({});
  });

  test.each<[string, string, string]>([
    ['null', 'null', 'event: null is not an object'],
    ['a list', '[1]', 'event: [1] is not an object'],
    ['not JSON', '{"kind":', 'event: not JSON'],
    ['a kind of 10,000 characters', event({ kind: `vip.${'a'.repeat(10_000)}` }), 'event.kind: "vip.aaaa'],
    ['a kind with a space', event({ kind: 'vip announced' }), 'event.kind: "vip announced" is not an event kind'],
    ['a node with a slash', event({ node: 'lb1/x' }), 'event.node: "lb1/x" is not a node name'],
    ['a node of 10,000 characters', event({ node: 'n'.repeat(10_000) }), 'event.node: "nnnn'],
    ['at not a time', event({ at: 'yesterday' }), 'event.at: "yesterday" is not an ISO time'],
    ['at a number', event({ at: 5 }), 'event.at: 5 is not an ISO time'],
    ['data a list', event({ data: [1, 2] }), 'event.data: [1,2] is not an object'],
    [
      'a message over MAX_AGENT_EVENT_CHARS',
      event({ data: { reason: 'x'.repeat(MAX_AGENT_EVENT_CHARS) } }),
      `characters is more than the limit of ${MAX_AGENT_EVENT_CHARS} (MAX_AGENT_EVENT_CHARS)`,
    ],
  ])('%s is refused naming the field and the value (bounded)', (_name, text, said) => {
    const err = refusal(text);
    expect(err.code).toBe('BAD_REQUEST');
    expect(err.message).toContain(said);
    expect(err.message.length).toBeLessThan(300);
  });

  test('500 events of the largest size kept still make a snapshot JSON.stringify can write', () => {
    const big = parseAgentEvent(event({ data: { reason: 'x'.repeat(MAX_AGENT_EVENT_CHARS - 400) } }));
    expect(JSON.stringify(Array.from({ length: 500 }, () => big)).length).toBeLessThan(64 * 1024 * 1024);
  });
});

describe('dashboard timeline - bounded in size', () => {
  test('500 events near the largest size: the kept timeline stays within TIMELINE_MAX_CHARS, the newest kept', () => {
    const t = createTimeline();
    const big = (i: number) => parseAgentEvent(event({ data: { i, reason: 'x'.repeat(MAX_AGENT_EVENT_CHARS - 400) } }));
    for (let i = 0; i < 500; i++) t.add(big(i));
    const kept = t.list();
    expect(JSON.stringify(kept).length).toBeLessThanOrEqual(TIMELINE_MAX_CHARS + 1024);
    expect(kept.length).toBeGreaterThan(1);
    expect(kept.at(-1)?.data.i).toBe(499);
    expect(kept.map((e) => e.data.i)).toEqual(kept.map((_, k) => 500 - kept.length + k)); // the newest, in order
  });

  test('small events are bounded by count only; one event larger than the limit is still kept alone', () => {
    const t = createTimeline(5, 5, 1000);
    for (let i = 0; i < 8; i++) t.add(parseAgentEvent(event({ data: { i } })));
    expect(t.list().map((e) => e.data.i)).toEqual([3, 4, 5, 6, 7]);
    t.add(parseAgentEvent(event({ data: { i: 8, reason: 'y'.repeat(2000) } })));
    expect(t.list().map((e) => e.data.i)).toEqual([8]);
  });
});
