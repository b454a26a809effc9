import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { hostsOfKind, MAX_NODES } from '../topology/model.js';
import { Lab } from './lab.js';
import { type LabState, writeState } from './state.js';

/** A state as `lab up` writes it (netns, static mode, nftables with l2 backends). */
function labState(overrides: Partial<LabState> = {}): LabState {
  return {
    version: 1,
    id: 't1',
    runtime: 'netns',
    mode: 'static',
    controlSlot: 0,
    etcdMembers: 3,
    dataplane: 'nftables',
    backendNetwork: 'l2',
    forwarding: 'l2',
    clients: 1,
    backends: 4,
    nodeIndexes: [1, 2, 3],
    killed: [],
    pids: {},
    createdAt: '2026-12-06T00:00:00.000Z',
    ...overrides,
  };
}

describe('lab - state in memory and on disk', () => {
  let dir: string;
  const saved = process.env.L4FLEET_LAB_STATE_DIR;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'l4f-lab-test-'));
    process.env.L4FLEET_LAB_STATE_DIR = dir;
  });
  afterEach(() => {
    if (saved === undefined) delete process.env.L4FLEET_LAB_STATE_DIR;
    else process.env.L4FLEET_LAB_STATE_DIR = saved;
    rmSync(dir, { recursive: true, force: true });
  });

  test('lab - an add-node refused past the node limit changes nothing: the next save writes the lab as it was', async () => {
    const full = Array.from({ length: MAX_NODES }, (_, i) => i + 1);
    writeState(labState({ nodeIndexes: full }));
    const lab = Lab.open('t1');
    await expect(lab.addNode()).rejects.toThrow(`nodes ${MAX_NODES + 1} is not an integer`);
    expect(hostsOfKind(lab.topology, 'node')).toHaveLength(MAX_NODES);
    // Any later save (here a recorded pid) must write the state as it was, and the lab must still open.
    lab.recordPid('control', 'nats', 4242);
    const state = JSON.parse(readFileSync(join(dir, 't1', 'state.json'), 'utf8')) as LabState;
    expect(state.nodeIndexes).toEqual(full);
    expect(hostsOfKind(Lab.open('t1').topology, 'node')).toHaveLength(MAX_NODES);
  });

  test('lab - an add-backend refused past the backend limit changes nothing', async () => {
    writeState(labState({ backends: 150 }));
    const lab = Lab.open('t1');
    await expect(lab.addBackend()).rejects.toThrow('backends 151');
    lab.recordPid('control', 'nats', 4242);
    expect(hostsOfKind(Lab.open('t1').topology, 'backend')).toHaveLength(150);
  });
});
