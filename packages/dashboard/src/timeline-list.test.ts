/** The page's timeline list (public/timeline-list.js): what it adds, drops and starts over, without a browser. */
import { describe, expect, test } from 'vitest';
import { createTimelineList } from '../public/timeline-list.js';

const entry = (id: number, kind = 'node.state', data: Record<string, unknown> = {}) => ({
  id,
  at: '2026-12-06T00:00:00.000Z',
  kind,
  node: 'n1',
  data,
});
const probe = (id: number) => entry(id, 'member.health', { member: 'web/a', status: 'up', changed: false });
const ids = (es: readonly { id: number }[]) => es.map((e) => e.id);

describe('timeline-list', () => {
  test('timeline-list - a reconnect to the same server skips what the page has; a restarted server starts it over', () => {
    const list = createTimelineList();
    expect(list.hello('a')).toBe(true); // the first hello: an empty list either way
    expect(ids(list.add([entry(1), entry(2), entry(3)]).added)).toEqual([1, 2, 3]);
    expect(list.hello('a')).toBe(false);
    expect(ids(list.add([entry(1), entry(2), entry(3), entry(4)]).added)).toEqual([4]);
    // The dashboard restarted: its ids start at 1 again, and the page must show them, not wait for id 5.
    expect(list.hello('b')).toBe(true);
    expect(ids(list.add([entry(1), entry(2)]).added)).toEqual([1, 2]);
  });

  test('timeline-list - unchanged probes have their own small limit: they never push other entries out', () => {
    const list = createTimelineList({ max: 3, maxProbes: 2 });
    list.hello('a');
    list.add([entry(1, 'action'), entry(2, 'vip.withdrawn')]);
    const many = Array.from({ length: 50 }, (_, i) => probe(3 + i));
    const { added, dropped } = list.add(many);
    expect(ids(added)).toEqual([51, 52]); // the newest probes only: the others would be dropped at once
    expect(dropped).toEqual([]);
    const next = list.add([probe(53)]);
    expect([ids(next.added), next.dropped]).toEqual([[53], [51]]);
    expect(list.add([probe(54)]).dropped).toEqual([52]);
    const more = list.add([entry(55), entry(56)]);
    expect([ids(more.added), more.dropped]).toEqual([[55, 56], [1]]);
  });
});
