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

/**
 * A decided state as the store delivers it: `decided` and `ramps`, the pools whose record is served (`pools`, the
 * pools of `decided` unless given) and those whose key holds a record the store refused with none served instead.
 */
const state = (
  decided: [string, MemberStatus][],
  opts: { ramps?: [string, MemberRamp][]; revision?: number; pools?: string[]; refused?: string[] } = {},
): DecidedState => ({
  decided: new Map(decided),
  ramps: new Map(opts.ramps ?? []),
  revision: opts.revision ?? 10,
  pools: new Set(opts.pools ?? decided.map(([k]) => k.slice(0, k.indexOf('/')))),
  refusedPools: new Set(opts.refused ?? []),
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
    const handMade = { decided: new Map(), ramps: new Map(), revision: 3 }; // no pool sets: nothing refused
    expect(fallback.fill(handMade)).toBe(handMade);
  });

  test('decided fallback - a refused pool takes the file decisions and the ramps of its up members, once logged', async () => {
    const { fallback, events } = await fallbackWith({ state: FILE });
    const out = fallback.fill(state([['api/x', 'up']], { refused: ['web'] }));
    expect([...out.decided]).toEqual([
      ['api/x', 'up'], // etcd's: api was not refused, the file's api/x stays unused
      ['web/a', 'down'],
      ['web/b', 'up'],
    ]);
    expect([...out.ramps]).toEqual([['web/b', { percent: 25, sinceMs: 1_000 }]]);
    expect(out.revision).toBe(10);
    fallback.fill(state([['api/x', 'down']], { revision: 11, refused: ['web'] }));
    expect(events('decidedFromStateFile')).toEqual([expect.objectContaining({ level: 40, pool: 'web', members: 2 })]);
  });

  test('decided fallback - a readable record for the pool wins: the file stops standing in, said once', async () => {
    const { fallback, events } = await fallbackWith({ state: FILE });
    fallback.fill(state([], { refused: ['web'] }));
    const out = fallback.fill(state([['web/a', 'up']], { revision: 11 }));
    expect([...out.decided]).toEqual([['web/a', 'up']]);
    expect(out.ramps.size).toBe(0);
    const later = state([], { revision: 12 });
    expect(fallback.fill(later)).toBe(later);
    expect(events('decidedPoolReadable')).toEqual([expect.objectContaining({ level: 30, pool: 'web' })]);
  });

  // The aggregator writes decided/<pool> with no member for a removed pool that had one in slow start: every node
  // that reads it holds no decision for the pool. The file's (web/a down) kept on this node only would count web/a
  // down here alone once the pool is created again: a different table on this node.
  test('decided fallback - a readable record with no member ends the stand-in: the pool has no decisions', async () => {
    const { fallback, events } = await fallbackWith({ state: FILE });
    expect(fallback.fill(state([], { refused: ['web'] })).decided.get('web/a')).toBe('down');
    const empty = state([['api/x', 'up']], { revision: 11, pools: ['api', 'web'] });
    const out = fallback.fill(empty);
    expect([...out.decided]).toEqual([['api/x', 'up']]);
    expect(out.ramps.size).toBe(0);
    expect(events('decidedPoolReadable')).toEqual([expect.objectContaining({ level: 30, pool: 'web' })]);
  });

  test('decided fallback - the refused key deleted ends the stand-in: the pool has no decisions, said once', async () => {
    const { fallback, events } = await fallbackWith({ state: FILE });
    fallback.fill(state([], { refused: ['web'] }));
    const gone = state([['api/x', 'up']], { revision: 11 });
    expect([...fallback.fill(gone).decided]).toEqual([['api/x', 'up']]);
    fallback.fill(state([['api/x', 'down']], { revision: 12 }));
    expect(events('decidedPoolDeleted')).toEqual([expect.objectContaining({ level: 30, pool: 'web' })]);
    expect(events('decidedPoolReadable')).toEqual([]);
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
      const out = fallback.fill(state([['api/x', 'up']], { refused: ['web'] }));
      expect([...out.decided]).toEqual([['api/x', 'up']]);
      fallback.fill(state([['api/x', 'down']], { revision: 11, refused: ['web'] }));
      expect(events('decidedPoolUnknown')).toEqual([expect.objectContaining({ level: 50, pool: 'web', reason })]);
    },
  );

  // The aggregator never deletes decided/<pool> (store decided.ts writes with deleteOthers: false; design 0002
  // "decided keeps removed pools"): a refused record outlives its pool, and the nodes that can read it keep its
  // decisions. The file's stand in for it as long as its key holds a record this node refuses, whatever else etcd
  // delivers, so a pool re-created under the same name starts with the same decisions on every node.
  test('decided fallback - a refused key keeps the file decisions standing in, whatever else etcd delivers', async () => {
    const { fallback, events } = await fallbackWith({ state: FILE });
    let out = fallback.fill(state([], { refused: ['web'] }));
    for (let revision = 11; revision <= 20; revision++) {
      out = fallback.fill(state([['api/x', 'up']], { revision, refused: ['web'] }));
    }
    expect(out.decided.get('web/a')).toBe('down');
    expect(events('decidedFromStateFile').length).toBe(1);
    expect(events('decidedPoolReadable')).toEqual([]);
  });
});
