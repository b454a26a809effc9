import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';

// No agent starts: startAgent records a made-up pid, as the real one records the started daemon's, and notes who held
// the lab's lock then.
const agent = vi.hoisted(() => ({ starts: [] as { node: string; lockedBy: string | undefined }[] }));
vi.mock('./netns-runtime.js', async (importOriginal) => {
  const { labLockPath } = await import('./lock.js');
  return {
    ...(await importOriginal<typeof import('./netns-runtime.js')>()),
    startAgent: vi.fn((lab: import('./lab-runtime.js').LabContext, node: string) => {
      const lock = labLockPath(lab.id);
      const lockedBy = existsSync(lock)
        ? (JSON.parse(readFileSync(lock, 'utf8')) as { command: string }).command
        : undefined;
      agent.starts.push({ node, lockedBy });
      lab.recordPid(node, 'agent', 4321);
    }),
  };
});

const { LabError } = await import('../errors.js');
type LabError = import('../errors.js').LabError;
const { restartAgent } = await import('./faults.js');
const { Lab } = await import('./lab.js');
const { labLockPath } = await import('./lock.js');
const { readState, removeState, writeState } = await import('./state.js');
type LabState = import('./state.js').LabState;

function labState(overrides: Partial<LabState> = {}): LabState {
  return {
    version: 1,
    id: 'f1',
    runtime: 'netns',
    mode: 'agent',
    controlSlot: 0,
    etcdMembers: 3,
    dataplane: 'nftables',
    backendNetwork: 'l2',
    forwarding: 'l2',
    clients: 1,
    backends: 4,
    nodeIndexes: [1, 2, 3],
    killed: [],
    pids: { node1: { agent: 100 } },
    createdAt: '2026-12-06T00:00:00.000Z',
    upAt: '2026-12-06T00:01:00.000Z',
    ...overrides,
  };
}

describe('faults - restartAgent', () => {
  let dir: string;
  const saved = process.env.L4FLEET_LAB_STATE_DIR;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'l4f-lab-faults-'));
    process.env.L4FLEET_LAB_STATE_DIR = dir;
    agent.starts = [];
  });
  afterEach(() => {
    if (saved === undefined) delete process.env.L4FLEET_LAB_STATE_DIR;
    else process.env.L4FLEET_LAB_STATE_DIR = saved;
    rmSync(dir, { recursive: true, force: true });
  });

  test('faults - restartAgent: under the lab lock, on the state as it is then: a kill by another command stays', async () => {
    writeState(labState());
    const lab = Lab.open('f1');
    // Another lab command (another process) kills node2 after this lab was opened.
    writeState(labState({ killed: ['node2'] }));
    expect(await restartAgent(lab, 'node1')).toBe(4321);
    expect(agent.starts).toEqual([{ node: 'node1', lockedBy: 'restart-agent node1' }]);
    const state = readState('f1');
    expect(state?.killed).toEqual(['node2']);
    expect(state?.pids.node1?.agent).toBe(4321);
    expect(existsSync(labLockPath('f1'))).toBe(false);
  });

  test('faults - restartAgent: while another lab command holds the lock it waits, then fails naming it; nothing starts', async () => {
    writeState(labState());
    const lab = Lab.open('f1');
    // pid 1 (init) runs for as long as this test does: a live holder.
    const start = readFileSync('/proc/1/stat', 'utf8').split(') ')[1]?.split(' ')[19];
    writeFileSync(labLockPath('f1'), JSON.stringify({ pid: 1, start, command: 'kill node2' }));
    const err = await Promise.resolve()
      .then(() => restartAgent(lab, 'node1', { lockWaitMs: 300 }))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LabError);
    expect((err as Error).message).toMatch(/another lab command \("kill node2", pid 1\)/);
    expect(agent.starts).toEqual([]);
    expect(readState('f1')).toEqual(labState());
  });

  test('faults - restartAgent on a lab taken down meanwhile: LAB_NOT_RUNNING, and no state is written back', async () => {
    writeState(labState());
    const lab = Lab.open('f1');
    // What `lab down` does to the state (its namespaces and processes aside).
    removeState('f1');
    const err = await Promise.resolve()
      .then(() => restartAgent(lab, 'node1'))
      .catch((e: unknown) => e);
    expect((err as LabError).code).toBe('LAB_NOT_RUNNING');
    expect(agent.starts).toEqual([]);
    expect(readState('f1')).toBeUndefined();
  });
});
