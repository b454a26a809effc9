import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pidStartTime } from '@l4fleet/process';
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import { LabError } from '../errors.js';
import {
  appendEvent,
  type LabState,
  labDir,
  readEvents,
  readState,
  readStateForUp,
  recordPid,
  removeState,
  writeState,
} from './state.js';

/** A state as `lab up` writes it (netns, agent mode, bpf with routed backends, BFD). */
const good: LabState = {
  version: 1,
  id: 'x',
  runtime: 'netns',
  mode: 'agent',
  controlSlot: 3,
  etcdMembers: 3,
  bfd: { intervalMs: 100, multiplier: 3 },
  dataplane: 'bpf',
  backendNetwork: 'routed',
  forwarding: 'gue',
  clients: 1,
  backends: 4,
  nodeIndexes: [1, 2, 3],
  killed: ['etcd2', 'node2'],
  pids: { control: { etcd1: 100, etcd2: 101, nats: 102 }, node1: { gobgpd: 200, agent: 201 } },
  starts: { control: { etcd1: '5000', etcd2: '5001', nats: '5002' }, node1: { gobgpd: '6000', agent: '6001' } },
  createdAt: '2026-12-06T00:00:00.000Z',
  upAt: '2026-12-06T00:00:30.000Z',
};

describe('lab state - read back and checked', () => {
  let dir: string;
  const saved = process.env.L4FLEET_LAB_STATE_DIR;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'l4f-lab-state-'));
    process.env.L4FLEET_LAB_STATE_DIR = dir;
  });
  afterEach(() => {
    if (saved === undefined) delete process.env.L4FLEET_LAB_STATE_DIR;
    else process.env.L4FLEET_LAB_STATE_DIR = saved;
    rmSync(dir, { recursive: true, force: true });
  });

  /** Writes `contents` as lab `id`'s state file, byte for byte. */
  function writeRaw(id: string, contents: string): void {
    mkdirSync(join(dir, id), { recursive: true });
    writeFileSync(join(dir, id, 'state.json'), contents);
  }

  test('lab state - what up writes reads back equal; an older state without the optional fields too', () => {
    writeState(good);
    expect(readState('x')).toEqual(good);
    const {
      etcdMembers: _e,
      bfd: _b,
      dataplane: _d,
      backendNetwork: _n,
      forwarding: _f,
      upAt: _u,
      starts: _s,
      ...old
    } = good;
    // Without etcdMembers the lab ran one member (etcd1): etcd2 was never there to kill.
    const older = { ...old, killed: ['node2'] };
    writeState(older);
    expect(readState('x')).toEqual(older);
    expect(readState('absent')).toBeUndefined();
  });

  test.each<[string, Record<string, unknown>, string]>([
    ['a pid that is not a positive integer', { pids: { control: { etcd2: -5 } } }, 'pids.control.etcd2 -5'],
    ['a pid as text', { pids: { control: { etcd2: '4242' } } }, 'pids.control.etcd2 "4242"'],
    ['a pid of a fraction', { pids: { node1: { agent: 1.5 } } }, 'pids.node1.agent 1.5'],
    ['pids of a host the lab has not', { pids: { node9: { agent: 5 } } }, 'pids.node9: "node9" is not a host'],
    ['pids of the root namespace', { pids: { host: { x: 5 } } }, 'pids.host: "host" is not a host'],
    ['no id', { id: undefined }, 'id missing is not "x", the name of its directory'],
    ['another lab id', { id: 'y' }, 'id "y" is not "x", the name of its directory'],
    ['an unknown runtime', { runtime: 'podman' }, 'runtime "podman" is not one of netns, docker'],
    ['an unknown mode', { mode: 'both' }, 'mode "both" is not one of agent, static'],
    ['another version', { version: 2 }, 'version 2 is not 1'],
    ['node indexes that are not a list', { nodeIndexes: '1,2' }, 'nodeIndexes "1,2" is not a list of integers'],
    ['a repeated node index', { nodeIndexes: [1, 1] }, 'node index 1 appears twice'],
    ['a node index past the limit', { nodeIndexes: [1, 99] }, 'node index 99'],
    ['no backends', { backends: undefined }, 'backends missing is not an integer'],
    ['a control slot off the range', { controlSlot: 300 }, 'controlSlot 300'],
    ['an unknown data plane', { dataplane: 'xdp' }, 'dataplane "xdp" is not one of'],
    ['BFD without timers', { bfd: {} }, 'bfd {} is not an object of integers'],
    ['killed names that are not text', { killed: [1] }, 'killed [1] is not a list of names'],
    ['a killed name the lab has not', { killed: ['node9'] }, 'killed: "node9" is not a host or etcd member'],
    ['pids not an object', { pids: [] }, 'pids [] is not an object'],
    ['a start time as a number', { starts: { node1: { agent: 6001 } } }, 'starts.node1.agent 6001 is not a start time'],
    ['a start time with no pid', { starts: { node1: { bfdd: '6002' } } }, 'starts.node1.bfdd: no pid is recorded'],
    ['start times not an object', { starts: 'x' }, 'starts "x" is not an object'],
  ])('lab state - %s is refused, naming the field and the value', (_, change, message) => {
    writeRaw('x', JSON.stringify({ ...good, ...change }));
    expect(() => readState('x')).toThrow(LabError);
    expect(() => readState('x')).toThrow(message);
    try {
      readState('x');
    } catch (err) {
      expect((err as LabError).code).toBe('STATE_INVALID');
      expect((err as Error).message).toContain(join(dir, 'x', 'state.json'));
    }
  });

  test.each([
    ['not JSON', '{"version": 1, "id": "x"'],
    ['not an object', '[1, 2]'],
    ['a hand edit', JSON.stringify({ ...good, runtime: 'podman' })],
  ])('lab state - up takes a state file that is %s as a stale lab (removed and rebuilt)', (_, contents) => {
    writeRaw('x', contents);
    const told: LabError[] = [];
    expect(readStateForUp('x', (err) => told.push(err))).toBeUndefined();
    expect(told.map((e) => e.code)).toEqual(['STATE_INVALID']);
    writeState(good);
    expect(readStateForUp('x', (err) => told.push(err))).toEqual(good);
    expect(told).toHaveLength(1);
  });

  test('lab state - a recorded pid keeps its start time; a new pid for the role replaces both', () => {
    const { starts: _s, ...before } = good;
    const state: LabState = { ...before, pids: {} };
    recordPid(state, 'node1', 'agent', process.pid);
    expect(state.starts?.node1?.agent).toBe(pidStartTime(process.pid));
    expect(state.starts?.node1?.agent).toMatch(/^\d+$/);
    // A pid that no longer runs has none: no old start time may stay with the new pid.
    recordPid(state, 'node1', 'agent', 2 ** 22 + 1);
    expect(state.pids.node1?.agent).toBe(2 ** 22 + 1);
    expect(state.starts?.node1?.agent).toBeUndefined();
    writeState(state);
    expect(readState('x')?.starts).toEqual({ node1: {} });
  });
});

describe('lab events - appended only while the lab is there', () => {
  let dir: string;
  const saved = process.env.L4FLEET_LAB_STATE_DIR;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'l4f-lab-events-'));
    process.env.L4FLEET_LAB_STATE_DIR = dir;
  });
  afterEach(() => {
    if (saved === undefined) delete process.env.L4FLEET_LAB_STATE_DIR;
    else process.env.L4FLEET_LAB_STATE_DIR = saved;
    rmSync(dir, { recursive: true, force: true });
  });

  test('lab events - an event of a lab that is up is appended', () => {
    writeState(good);
    appendEvent('x', { event: 'nodeKilled', host: 'node2' });
    expect(readEvents('x')).toMatchObject([{ event: 'nodeKilled', host: 'node2' }]);
  });

  test('lab events - an event after down is dropped (debug-logged): no empty lab directory comes back', () => {
    writeState(good);
    removeState('x');
    const log = { debug: vi.fn() };
    appendEvent('x', { event: 'nodeKilled', host: 'node2' }, log);
    expect(existsSync(labDir('x'))).toBe(false);
    expect(log.debug).toHaveBeenCalledWith(
      expect.objectContaining({ event: 'labEventDropped', id: 'x', dropped: 'nodeKilled' }),
      expect.any(String),
    );
    // Without a logger too.
    appendEvent('x', { event: 'nodeKilled', host: 'node2' });
    expect(existsSync(labDir('x'))).toBe(false);
  });
});

describe('lab state dir - only a direct child of the state root', () => {
  let dir: string;
  let root: string;
  const saved = process.env.L4FLEET_LAB_STATE_DIR;
  beforeEach(() => {
    // The state root two levels down in a sandbox, so no id below (at most one `..`; the absolute one names nothing
    // there is) reaches out of it even if labDir stopped refusing them, with a sibling a path escape would reach.
    dir = mkdtempSync(join(tmpdir(), 'l4f-lab-statedir-'));
    root = join(dir, 's1', 'state');
    mkdirSync(join(root, 'a', 'b'), { recursive: true });
    mkdirSync(join(dir, 's1', 'precious'));
    process.env.L4FLEET_LAB_STATE_DIR = root;
  });
  afterEach(() => {
    if (saved === undefined) delete process.env.L4FLEET_LAB_STATE_DIR;
    else process.env.L4FLEET_LAB_STATE_DIR = saved;
    rmSync(dir, { recursive: true, force: true });
  });

  test.each(['..', '', '.', 'a/b', '../precious', 'a/../precious', 'x/', '/l4f-lab-no-such-dir'])(
    'lab state dir - id %j is refused by labDir and removeState, nothing is removed',
    (id) => {
      expect(() => labDir(id)).toThrow(LabError);
      expect(() => labDir(id)).toThrow(`"${id}"`);
      expect(() => removeState(id)).toThrow(LabError);
      expect(existsSync(join(dir, 's1', 'precious'))).toBe(true);
      expect(existsSync(join(root, 'a', 'b'))).toBe(true);
    },
  );

  test('lab state dir - a lab id is a directory directly in the state root; removeState removes only it', () => {
    expect(labDir('lab')).toBe(join(root, 'lab'));
    writeState(good);
    removeState('x');
    expect(existsSync(labDir('x'))).toBe(false);
    expect(existsSync(join(root, 'a', 'b'))).toBe(true);
  });

  test('lab state dir - an empty L4FLEET_LAB_STATE_DIR is unset (not the working directory)', () => {
    process.env.L4FLEET_LAB_STATE_DIR = '';
    expect(labDir('lab')).toBe('/run/l4fleet-lab/lab');
  });
});
