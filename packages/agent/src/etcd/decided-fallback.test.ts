import { type MemberRamp, type MemberStatus, parseFleet } from '@l4fleet/config';
import type { DecidedState } from '@l4fleet/store';
import pino from 'pino';
import { describe, expect, test } from 'vitest';
import type { LastState, LastStateStore } from '../persist/last-state.js';
import { createDecidedFallback } from './decided-fallback.js';

interface Line {
  level: number;
  event?: string;
  pool?: string;
  members?: number;
  reason?: string;
}

/** The fallback with a state file that loads `state` (undefined: no file) or fails with `failure`. */
async function fallbackWith(file: { state?: Partial<LastState>; failure?: Error } | null) {
  const lines: Line[] = [];
  const log = pino({ level: 'debug' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
  const store: LastStateStore | undefined =
    file === null
      ? undefined
      : {
          path: '/var/lib/l4fleet/state.json',
          load: async () => {
            if (file.failure) throw file.failure;
            if (!file.state) return undefined;
            return {
              fleet: parseFleet({ pools: [] }),
              revision: 7,
              generation: 'g7',
              decided: new Map(),
              drained: false,
              savedAt: 0,
              ...file.state,
            };
          },
          save: async () => 0,
        };
  const fallback = createDecidedFallback(store, log);
  await fallback.load();
  return { fallback, lines, events: (event: string) => lines.filter((l) => l.event === event) };
}

const state = (decided: [string, MemberStatus][], ramps: [string, MemberRamp][] = [], revision = 10): DecidedState => ({
  decided: new Map(decided),
  ramps: new Map(ramps),
  revision,
});

const FILE: Partial<LastState> = {
  decided: new Map<string, MemberStatus>([
    ['web/a', 'down'],
    ['web/b', 'up'],
    ['api/x', 'down'],
  ]),
  ramps: new Map([
    ['web/a', { percent: 50, sinceMs: 900 }], // a ramp for a member the file has down: never served (ramps are up's)
    ['web/b', { percent: 25, sinceMs: 1_000 }],
  ]),
};

describe('agent decided fallback', () => {
  test('decided fallback - nothing refused: etcd state passed on as it came', async () => {
    const { fallback } = await fallbackWith({ state: FILE });
    const d = state([['web/a', 'up']]);
    expect(fallback.fill(d)).toBe(d);
  });

  test('decided fallback - a refused pool takes the file decisions and the ramps of its up members, once logged', async () => {
    const { fallback, events } = await fallbackWith({ state: FILE });
    fallback.refused('decided/web');
    const out = fallback.fill(state([['api/x', 'up']]));
    expect([...out.decided]).toEqual([
      ['api/x', 'up'], // etcd's: api was not refused, the file's api/x stays unused
      ['web/a', 'down'],
      ['web/b', 'up'],
    ]);
    expect([...out.ramps]).toEqual([['web/b', { percent: 25, sinceMs: 1_000 }]]);
    expect(out.revision).toBe(10);
    fallback.fill(state([['api/x', 'down']], [], 11));
    expect(events('decidedFromStateFile')).toEqual([expect.objectContaining({ level: 40, pool: 'web', members: 2 })]);
  });

  test('decided fallback - a readable record for the pool wins: the file stops standing in, said once', async () => {
    const { fallback, events } = await fallbackWith({ state: FILE });
    fallback.refused('decided/web');
    fallback.fill(state([]));
    const out = fallback.fill(state([['web/a', 'up']], [], 11));
    expect([...out.decided]).toEqual([['web/a', 'up']]);
    expect(out.ramps.size).toBe(0);
    // No longer refused: a later state without the pool is etcd's as it came.
    const later = state([], [], 12);
    expect(fallback.fill(later)).toBe(later);
    expect(events('decidedPoolReadable')).toEqual([expect.objectContaining({ level: 30, pool: 'web' })]);
  });

  test.each([
    ['no state file', null, 'no state file'],
    ['a state file path with no file', {}, 'no state file at /var/lib/l4fleet/state.json'],
    [
      'a file without the pool',
      { state: { decided: new Map<string, MemberStatus>([['api/x', 'down']]) } },
      'the state file has no decisions for the pool',
    ],
    [
      'an unusable file',
      { failure: new Error('STATE_STALE: saved 2 days ago') },
      'state file not usable: STATE_STALE: saved 2 days ago',
    ],
  ] as const)(
    'decided fallback - %s: the pool keeps no decisions, one error log names why',
    async (_, file, reason) => {
      const { fallback, events } = await fallbackWith(file);
      fallback.refused('decided/web');
      const out = fallback.fill(state([['api/x', 'up']]));
      expect([...out.decided]).toEqual([['api/x', 'up']]);
      fallback.fill(state([['api/x', 'down']], [], 11));
      expect(events('decidedPoolUnknown')).toEqual([expect.objectContaining({ level: 50, pool: 'web', reason })]);
    },
  );

  test('decided fallback - keys that name no decided pool are not pools', async () => {
    const { fallback } = await fallbackWith({ state: FILE });
    for (const key of ['decided/', 'decided/a/web', 'history/web', 'health/n1/web']) fallback.refused(key);
    const d = state([]);
    expect(fallback.fill(d)).toBe(d);
  });

  // The aggregator never deletes decided/<pool> (store decided.ts writes with deleteOthers: false; design 0002
  // "decided keeps removed pools"): a refused record outlives its pool, and the nodes that can read it keep its
  // decisions. The file's stand in for it as long as etcd delivers none, whatever the fleet holds, so a pool
  // re-created under the same name starts with the same decisions on every node.
  test('decided fallback - a refused pool keeps the file decisions while etcd delivers none for it', async () => {
    const { fallback } = await fallbackWith({ state: FILE });
    fallback.refused('decided/web');
    let out = fallback.fill(state([]));
    for (let rev = 11; rev <= 20; rev++) out = fallback.fill(state([['api/x', 'up']], [], rev));
    expect(out.decided.get('web/a')).toBe('down');
  });
});
