import { describe, expect, test } from 'vitest';
import { mayAnnounce, type NodeEvent, type NodeState, nextNodeState } from './node-state.js';

describe('node state - transitions', () => {
  test.each<[NodeState, NodeEvent, NodeState]>([
    ['starting', { type: 'ready', drained: false }, 'serving'],
    ['starting', { type: 'ready', drained: true }, 'drained'],
    ['starting', { type: 'drain' }, 'drained'],
    ['serving', { type: 'drain' }, 'draining'],
    ['serving', { type: 'undrain' }, 'serving'],
    ['serving', { type: 'ready', drained: true }, 'serving'],
    ['draining', { type: 'drained' }, 'drained'],
    ['draining', { type: 'undrain' }, 'serving'],
    ['drained', { type: 'undrain' }, 'serving'],
    ['drained', { type: 'drain' }, 'drained'],
    ['serving', { type: 'stop' }, 'stopping'],
    ['stopping', { type: 'undrain' }, 'stopping'],
    ['stopping', { type: 'ready', drained: false }, 'stopping'],
    ['stopping', { type: 'stopped' }, 'stopped'],
    ['stopped', { type: 'undrain' }, 'stopped'],
  ])('%s + %j -> %s', (from, ev, to) => {
    expect(nextNodeState(from, ev)).toBe(to);
  });

  test('only a serving node announces', () => {
    const states: NodeState[] = ['starting', 'serving', 'draining', 'drained', 'stopping', 'stopped'];
    expect(states.filter(mayAnnounce)).toEqual(['serving']);
  });
});
