/**
 * The served inputs: what a restore from the state file takes (only what etcd has not delivered), and the change key
 * that decides whether the file must be written again (every input the file holds).
 */
import { type Fleet, type HistoryMember, type MemberRamp, type PoolHistory, parseFleet } from '@l4fleet/config';
import { describe, expect, test } from 'vitest';
import type { LastState } from '../persist/last-state.js';
import { createServedInputs } from './inputs.js';

const fleetOf = (port: number): Fleet =>
  parseFleet({
    hashSeed: 7,
    pools: [{ name: 'web', healthCheck: { type: 'none' }, members: [{ name: 'a', address: '198.18.0.1', port }] }],
    vips: [{ address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web' }],
  });

const file: LastState = {
  fleet: fleetOf(80),
  revision: 4,
  generation: 'g4',
  decided: new Map([['web/a', 'down']]),
  history: new Map(),
  drained: true,
  savedAt: 0,
};

describe('serve inputs - restore from the state file', () => {
  test('nothing from etcd yet: all four inputs come from the file', () => {
    const inputs = createServedInputs();
    expect(inputs.restore(file)).toEqual(['desired', 'decided', 'nodes', 'history']);
    expect(inputs).toMatchObject({ source: 'lastState', complete: true, revision: 4, drainFlag: true });
    expect(inputs.decided.get('web/a')).toBe('down');
  });

  test('etcd delivered the desired state before it was lost: that stays, the file fills the rest', () => {
    const inputs = createServedInputs();
    const etcdFleet = fleetOf(81);
    inputs.setDesired({ fleet: etcdFleet, revision: 9, generation: 'g9' });
    expect(inputs.complete).toBe(false);
    expect(inputs.restore(file)).toEqual(['decided', 'nodes', 'history']);
    expect(inputs).toMatchObject({ source: 'lastState', complete: true, revision: 9, generation: 'g9' });
    expect(inputs.fleet).toBe(etcdFleet);
    expect(inputs.drainFlag).toBe(true);
    // The rest from etcd: the file is no longer served.
    inputs.setDecided(new Map([['web/a', 'up']]), new Map());
    inputs.setNodes(false);
    expect(inputs.allFromEtcd).toBe(false);
    inputs.setHistory(new Map());
    expect(inputs.allFromEtcd).toBe(true);
    expect(inputs.leaveLastState()).toBe(true);
    expect(inputs.source).toBe('etcd');
  });
});

const member = (name: string, weight: number): HistoryMember => ({ name, address: '198.18.0.1', port: 80, weight });
const poolHistory = (weights: readonly number[], untilMs = 1_000): PoolHistory => ({
  pool: 'web',
  current: weights.map((w, i) => member(`m${i}`, w)),
  earlier: [{ untilMs, members: [member('m0', 1)] }],
});

describe('serve inputs - the change key covers everything the state file holds', () => {
  const keyWith = (history: PoolHistory, ramp: MemberRamp): string => {
    const inputs = createServedInputs();
    inputs.setDesired({ fleet: fleetOf(80), revision: 5, generation: 'g5' });
    inputs.setDecided(new Map([['web/a', 'up']]), new Map([['web/a', ramp]]));
    inputs.setHistory(new Map([['web', history]]));
    inputs.setNodes(false);
    return inputs.key();
  };
  const base = keyWith(poolHistory([1, 1]), { percent: 10, sinceMs: 1_000 });

  test.each([
    // A slow-start step replaces the current table: same length, other weights.
    { name: 'current weights', history: poolHistory([1, 0.1]), ramp: { percent: 10, sinceMs: 1_000 } },
    {
      name: 'an earlier table',
      history: { ...poolHistory([1, 1]), earlier: [] },
      ramp: { percent: 10, sinceMs: 1_000 },
    },
    { name: 'an earlier time', history: poolHistory([1, 1], 2_000), ramp: { percent: 10, sinceMs: 1_000 } },
    { name: "a ramp's sinceMs", history: poolHistory([1, 1]), ramp: { percent: 10, sinceMs: 2_000 } },
    { name: "a ramp's percent", history: poolHistory([1, 1]), ramp: { percent: 25, sinceMs: 1_000 } },
  ])('$name changed: the key changes', ({ history, ramp }) => {
    expect(keyWith(history, ramp)).not.toBe(base);
  });

  test('the same inputs: the same key', () => {
    expect(keyWith(poolHistory([1, 1]), { percent: 10, sinceMs: 1_000 })).toBe(base);
  });
});
