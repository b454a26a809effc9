import type { MemberStatus } from '@l4fleet/config';
import { describe, expect, test } from 'vitest';
import type { ObservedStatus } from '../health/hysteresis.js';
import { decideAll, decideMember, decisionDelta } from './decide.js';

describe('decide - majority with hysteresis', () => {
  test.each<[(ObservedStatus | MemberStatus)[], MemberStatus | undefined, MemberStatus | undefined]>([
    [['down', 'down', 'up'], 'up', 'down'],
    [['up', 'up', 'down'], 'down', 'up'],
    [['up', 'down'], 'down', 'down'], // tie keeps the previous decision
    [['up', 'down'], 'up', 'up'],
    [['up', 'down'], undefined, undefined], // tie, nothing before: no decision (tables take it as up)
    [['unknown', 'unknown', 'down'], 'up', 'up'], // one down of three live nodes is no majority
    [['unknown', 'down', 'down'], 'up', 'down'],
    [['unknown', 'unknown', 'up'], 'down', 'up'], // up: a majority of those that observed
    [[], 'down', 'down'], // nobody reports: keep
    [['down'], undefined, 'down'],
  ])('%j with previous %s decides %s', (obs, previous, expected) => {
    // Each entry one live node's report.
    expect(decideMember(obs, previous, obs.length)).toBe(expected);
  });

  test('reports of nodes that are not live are ignored', () => {
    const reports = new Map([
      ['n1', new Map<string, ObservedStatus>([['web/a', 'up']])],
      ['n2', new Map<string, ObservedStatus>([['web/a', 'down']])],
      ['n3', new Map<string, ObservedStatus>([['web/a', 'down']])],
    ]);
    expect(decideAll(['web/a'], reports, new Set(['n1', 'n2', 'n3']), new Map())).toEqual(new Map([['web/a', 'down']]));
    // n3 died: 1 up vs 1 down, a tie, keeps the previous 'up'
    expect(decideAll(['web/a'], reports, new Set(['n1', 'n2']), new Map([['web/a', 'up']]))).toEqual(
      new Map([['web/a', 'up']]),
    );
  });

  test('down needs a strict majority of the live nodes: one node with a bad path never takes a member down', () => {
    const reports = (n1: ObservedStatus | undefined, n2: ObservedStatus) =>
      new Map([
        ['n1', new Map<string, ObservedStatus>(n1 === undefined ? [] : [['web/a', n1]])],
        ['n2', new Map<string, ObservedStatus>([['web/a', n2]])],
      ]);
    const pair = new Set(['n1', 'n2']);
    const up = new Map<string, MemberStatus>([['web/a', 'up']]);
    // A pair: n2's path is bad; n1 restarts (unknown, or no record yet) and then sees the member up again.
    expect(decideAll(['web/a'], reports('unknown', 'down'), pair, up)).toEqual(up);
    expect(decideAll(['web/a'], reports(undefined, 'down'), pair, up)).toEqual(up);
    expect(decideAll(['web/a'], reports('up', 'down'), pair, up)).toEqual(up);
    // Both see it down: down. n2 alone once n1 is not live (its lease gone): down too.
    expect(decideAll(['web/a'], reports('down', 'down'), pair, up).get('web/a')).toBe('down');
    expect(decideAll(['web/a'], reports('up', 'down'), new Set(['n2']), up).get('web/a')).toBe('down');
    // Up needs a majority of those that observed (no decision counts as up already): n1 back alone brings it up.
    const down = new Map<string, MemberStatus>([['web/a', 'down']]);
    expect(decideAll(['web/a'], reports('up', 'unknown'), pair, down).get('web/a')).toBe('up');
  });

  test('only the members asked for are decided', () => {
    const reports = new Map([['n1', new Map<string, ObservedStatus>([['web/gone', 'down']])]]);
    expect(decideAll(['web/a'], reports, new Set(['n1']), new Map()).size).toBe(0);
  });

  test('the delta holds changed decisions and removals', () => {
    const current = new Map<string, MemberStatus>([
      ['p/a', 'up'],
      ['p/b', 'up'],
      ['p/c', 'down'],
    ]);
    const next = new Map<string, MemberStatus>([
      ['p/a', 'up'],
      ['p/b', 'down'],
      ['p/d', 'up'],
    ]);
    const d = decisionDelta(current, next);
    expect(d.set).toEqual(
      new Map([
        ['p/b', 'down'],
        ['p/d', 'up'],
      ]),
    );
    expect(d.remove).toEqual(['p/c']);
  });
});
