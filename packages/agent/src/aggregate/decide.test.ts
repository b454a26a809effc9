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
    [['unknown', 'unknown', 'down'], 'up', 'down'], // unknown does not vote
    [[], 'down', 'down'], // nobody reports: keep
    [['down'], undefined, 'down'],
  ])('%j with previous %s decides %s', (obs, previous, expected) => {
    expect(decideMember(obs, previous)).toBe(expected);
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
