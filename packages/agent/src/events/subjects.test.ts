import { describe, expect, test } from 'vitest';
import { AgentError } from '../errors.js';
import { eventFilter, eventSubject } from './subjects.js';

/** NATS subject matching: `*` is one token, a last `>` one or more. */
function matches(filter: string, subject: string): boolean {
  const f = filter.split('.');
  const s = subject.split('.');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '>') return i === f.length - 1 && s.length > i;
    if (i >= s.length || (f[i] !== '*' && f[i] !== s[i])) return false;
  }
  return f.length === s.length;
}

describe('events - subjects', () => {
  test('layout <prefix>.<fleet>.<kind>.<node>', () => {
    expect(eventSubject('l4fleet', 'prod', 'vip.announced', 'node1')).toBe('l4fleet.prod.vip.announced.node1');
    expect(eventFilter('l4fleet', 'prod')).toBe('l4fleet.prod.*.*.>');
    expect(eventFilter('l4fleet', 'prod', { node: 'node1' })).toBe('l4fleet.prod.*.*.node1');
    expect(eventFilter('l4fleet', 'prod', { kind: 'vip.announced' })).toBe('l4fleet.prod.vip.announced.>');
  });

  // NODE_NAME allows '.', so `lb1.dc1` publishes on six tokens: a single `*` for the node saw none of its events.
  test.each([
    ['every event', {}, true],
    ['its kind', { kind: 'vip.announced' }, true],
    ['another kind', { kind: 'vip.withdrawn' }, false],
    ['the node', { node: 'lb1.dc1' }, true],
    ['the node and kind', { node: 'lb1.dc1', kind: 'vip.announced' }, true],
    ['a node named like its first label', { node: 'lb1' }, false],
    ['another node', { node: 'lb1.dc2' }, false],
  ])('a node named with dots (lb1.dc1): filter for %s', (_name, opts, seen) => {
    const subject = eventSubject('l4fleet', 'default', 'vip.announced', 'lb1.dc1');
    expect(matches(eventFilter('l4fleet', 'default', opts), subject)).toBe(seen);
  });

  test('a plain node is matched by the default and the kind filters', () => {
    const subject = eventSubject('l4fleet', 'default', 'member.health', 'node1');
    expect(matches(eventFilter('l4fleet', 'default'), subject)).toBe(true);
    expect(matches(eventFilter('l4fleet', 'default', { kind: 'member.health' }), subject)).toBe(true);
  });

  // A fleet `a.b`, an empty one, a node `>` or a prefix with a space followed nothing (or everything) silently.
  test.each([
    ['--subject-prefix', ['x y', 'default', {}], '"x y" is not a subject token'],
    ['--subject-prefix', ['', 'default', {}], '"" is not a subject token'],
    ['--fleet', ['l4fleet', 'a.b', {}], '"a.b" is not a subject token'],
    ['--fleet', ['l4fleet', '', {}], '"" is not a subject token'],
    ['--fleet', ['l4fleet', '*', {}], '"*" is not a subject token'],
    ['--node', ['l4fleet', 'default', { node: '>' }], '">" is not a node name'],
    ['--node', ['l4fleet', 'default', { node: 'a.*' }], '"a.*" is not a node name'],
    ['--node', ['l4fleet', 'default', { node: '' }], '"" is not a node name'],
    ['--kind', ['l4fleet', 'default', { kind: 'vip.>' }], '"vip.>" is not one of node.state'],
  ] as const)('%s invalid: FLAG_INVALID naming the flag and value', (flag, args, message) => {
    const [prefix, fleet, opts] = args;
    let err: unknown;
    try {
      eventFilter(prefix, fleet, opts);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(AgentError);
    expect((err as AgentError).code).toBe('FLAG_INVALID');
    expect((err as AgentError).message).toContain(`${flag}: ${message}`);
  });
});
