/**
 * The served inputs: what a restore from the state file takes (only what etcd has not delivered), and the change key
 * that decides whether the file must be written again (every input the file holds).
 */
import { type Fleet, parseFleet } from '@l4fleet/config';
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
