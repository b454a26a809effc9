import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';

// Nothing is made or killed here: `run` answers as if every command worked, and no process runs in any namespace.
// `failing`: commands that fail instead, with their answer.
const machine = vi.hoisted(() => ({
  netns: '',
  calls: [] as string[],
  failing: new Map<string, { code: number; stderr: string }>(),
}));
vi.mock('@l4fleet/process', async (importOriginal) => ({
  ...(await importOriginal<typeof import('@l4fleet/process')>()),
  run: vi.fn(async (argv: string[]) => {
    const line = argv.join(' ');
    machine.calls.push(line);
    const failure = machine.failing.get(line);
    if (failure) return { ...failure, stdout: '' };
    return { code: 0, stdout: line === 'ip netns list' ? machine.netns : '', stderr: '' };
  }),
  // A host's wiring (netns-plan.ts) that fails half way.
  runScript: vi.fn(async () => {
    throw new Error('wiring failed: RTNETLINK answers: File exists');
  }),
  namespacePids: vi.fn(async () => []),
  killAll: vi.fn(async (): Promise<number[]> => []), // every pid gone
}));

// The readiness waits of `up` only record the time each is given; `onEtcd` runs inside the first.
const ready = vi.hoisted(() => ({ timeouts: [] as number[], onEtcd: () => {} }));
vi.mock('./readiness.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('./readiness.js')>();
  const record = (timeoutMs: number) => {
    ready.timeouts.push(timeoutMs);
  };
  return {
    ...real,
    waitEtcd: vi.fn(async (_t: unknown, timeoutMs: number) => {
      record(timeoutMs);
      ready.onEtcd();
    }),
    waitNats: vi.fn(async (_u: unknown, timeoutMs: number) => record(timeoutMs)),
    waitNextHops: vi.fn(async (_t: unknown, _n: unknown, timeoutMs: number) => {
      record(timeoutMs);
      return [];
    }),
    waitVipsAnswer: vi.fn(async (_t: unknown, timeoutMs: number) => record(timeoutMs)),
  };
});

const { hostsOfKind, MAX_NODES } = await import('../topology/model.js');
const { Lab } = await import('./lab.js');
const { labLockPath } = await import('./lock.js');
const { netnsRuntime } = await import('./netns-runtime.js');
const { readState, writeState } = await import('./state.js');
type LabState = import('./state.js').LabState;

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
  let uid: ReturnType<typeof vi.spyOn> | undefined;
  const saved = process.env.L4FLEET_LAB_STATE_DIR;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'l4f-lab-test-'));
    process.env.L4FLEET_LAB_STATE_DIR = dir;
    machine.netns = '';
    machine.calls = [];
    machine.failing.clear();
    // up asks for root before anything else; nothing here needs it (run is mocked).
    uid = vi.spyOn(process, 'getuid').mockReturnValue(0);
  });
  afterEach(() => {
    uid?.mockRestore();
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

  test('lab - two commands at once each see the other: kills from two processes both stay in the state', async () => {
    writeState(labState());
    // Both opened (state read) before either changes anything, as two `lab kill` processes started together.
    const a = Lab.open('t1');
    const b = Lab.open('t1');
    await Promise.all([a.kill('node1'), b.kill('node2')]);
    expect(readState('t1')?.killed.sort()).toEqual(['node1', 'node2']);
  });

  test('lab - a command waits for the lock another lab command holds, then fails naming its pid and changes nothing', async () => {
    writeState(labState());
    // pid 1 (init) runs for as long as this test does: a live holder.
    const start = readFileSync('/proc/1/stat', 'utf8').split(') ')[1]?.split(' ')[19];
    writeFileSync(labLockPath('t1'), JSON.stringify({ pid: 1, start, command: 'add-node' }));
    const lab = Lab.open('t1', undefined, { lockWaitMs: 300 });
    await expect(lab.kill('node1')).rejects.toThrow(/another lab command \("add-node", pid 1\)/);
    expect(readState('t1')?.killed).toEqual([]);
    await expect(Lab.up({ id: 't1', lockWaitMs: 300 })).rejects.toThrow(/pid 1\b/);
    expect(readState('t1')).toEqual(labState());
  });

  /** A lab that `up` finds healthy: finished, every namespace present, no recorded process gone. */
  function healthyLab(): LabState {
    const state = labState({ upAt: '2026-12-06T00:01:00.000Z' });
    writeState(state);
    const namespaces = Lab.open('t1').topology.hosts.flatMap((h) => (h.namespace ? [h.namespace] : []));
    machine.netns = namespaces.map((n, i) => `${n} (id: ${i})`).join('\n');
    return state;
  }

  test('lab - up over a stale lab whose down left a process: refused naming it, the state (its pids) kept', async () => {
    const { killAll } = await import('@l4fleet/process');
    const stale = labState({ pids: { node1: { agent: 4242 } } });
    writeState(stale); // no namespace listed: not healthy, so up takes it down first
    vi.mocked(killAll).mockResolvedValueOnce([4242]); // one survives SIGKILL (D state)
    const err = await Lab.up({ id: 't1', nodes: 3, backends: 4, mode: 'static' }).catch((e) => e);
    expect((err as Error).message).toMatch(
      /lab "t1": the previous lab is not fully removed \(.*4242.*\); run lab down/,
    );
    expect(readState('t1')?.pids).toEqual(stale.pids);
  });

  // The state dir removed by hand: down finds the old lab by name prefix only, and up went on to wire over the
  // namespace that would not delete, failing later with an unrelated 'RTNETLINK answers: File exists'.
  test('lab - up over leftovers found by name only (no state) whose delete fails: refused naming them, nothing built', async () => {
    const build = vi.spyOn(netnsRuntime, 'build').mockResolvedValue();
    try {
      machine.netns = 'l4f-t1-node1 (id: 3)';
      machine.failing.set('ip netns del l4f-t1-node1', {
        code: 1,
        stderr: 'Cannot remove namespace: Device or resource busy',
      });
      const err = await Lab.up({ id: 't1', nodes: 3, backends: 4, mode: 'static' }).catch((e) => e);
      expect((err as Error).message).toMatch(
        /lab "t1": the previous lab is not fully removed \(.*ip netns del l4f-t1-node1: .*Device or resource busy.*\); run lab down --id t1/,
      );
      expect(build).not.toHaveBeenCalled();
      expect(readState('t1')).toBeUndefined();
    } finally {
      build.mockRestore();
    }
  });

  test('lab - up on a healthy lab with other options fails naming each one and both values; nothing changes', async () => {
    const state = healthyLab();
    const err = await Lab.up({ id: 't1', nodes: 2, backends: 4, dataplane: 'bpf', mode: 'auto' }).catch((e) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toBe(
      'lab "t1" is up with other options: --nodes 2 (the lab has 3), --dataplane bpf (the lab has nftables); ' +
        'run lab down --id t1 first to build it with them',
    );
    expect(readState('t1')).toEqual(state);
  });

  test('lab - up on a healthy lab: the same options, or ones not given on the command line, leave it as it is', async () => {
    const state = healthyLab();
    expect((await Lab.up({ id: 't1', nodes: 3, backends: 4, etcdMembers: 3, mode: 'static' })).id).toBe('t1');
    // The command line's defaults (3 nodes, bpf) were not given: they are not asked for.
    const given = new Set(['backends', 'bfd-interval-ms']);
    const cli = { id: 't1', nodes: 5, backends: 4, bfd: { intervalMs: 100, multiplier: 3 }, given };
    await expect(Lab.up(cli)).rejects.toThrow('--bfd-interval-ms 100 (the lab has no BFD)');
    expect((await Lab.up({ ...cli, given: new Set(['backends']) })).id).toBe('t1');
    expect(readState('t1')).toEqual(state);
  });

  test.each([
    ['forward', 3_600_000],
    ['back', -3_600_000],
  ])(
    'lab - up: the wall clock stepped %s an hour during the readiness waits leaves each the time that is left',
    async (_way, stepMs) => {
      // The hosts are made (build mocked); the waits see NTP step Date once etcd answered (timers, performance.now() go on).
      const build = vi.spyOn(netnsRuntime, 'build').mockResolvedValue();
      ready.timeouts = [];
      ready.onEtcd = () => {
        vi.useFakeTimers({ toFake: ['Date'] });
        vi.setSystemTime(Date.now() + stepMs);
      };
      try {
        await Lab.up({ id: 't1', mode: 'static', nodes: 3, readyTimeoutMs: 60_000 });
      } finally {
        vi.useRealTimers();
        ready.onEtcd = () => {};
        build.mockRestore();
      }
      // etcd, NATS, next hops, VIPs: each gets what is left of the 60 s, not 1 s (forward) or an hour more (back).
      expect(ready.timeouts).toHaveLength(4);
      for (const t of ready.timeouts) {
        expect(t).toBeGreaterThan(30_000);
        expect(t).toBeLessThanOrEqual(60_000);
      }
    },
  );

  test('lab - an add-node that fails undoes itself: no node in the state, its namespace removed, the next one alike', async () => {
    const state = labState();
    writeState(state);
    await expect(Lab.open('t1').addNode()).rejects.toThrow('wiring failed');
    expect(readState('t1')).toEqual(state);
    expect(machine.calls).toContain('ip netns del l4f-t1-node4');
    // The next add-node tries node4 again (and fails the same way): the failed one left nothing behind.
    await expect(Lab.open('t1').addNode()).rejects.toThrow('wiring failed');
    expect(readState('t1')?.nodeIndexes).toEqual([1, 2, 3]);
  });

  // The node's index is saved before its host is made; Ctrl-C or SIGTERM then (no handler: the process just ended) left
  // a node with no namespace and no pids in state.json, and the next `up` took the whole lab for stale and removed it.
  test('lab - an add-node interrupted once its node is in the state undoes itself: the state as before', async () => {
    const state = labState();
    writeState(state);
    const abort = new AbortController();
    const interrupted = new Error('interrupted by SIGINT');
    let saved: number[] | undefined;
    const start = vi.spyOn(netnsRuntime, 'startHost').mockImplementation(async () => {
      saved = readState('t1')?.nodeIndexes;
      abort.abort(interrupted);
    });
    try {
      // Bounded: not interrupted, the add waits for the router's route (never there here) 2 s, then fails otherwise.
      await expect(Lab.open('t1').addNode(2_000, abort.signal)).rejects.toBe(interrupted);
    } finally {
      start.mockRestore();
    }
    expect(saved).toEqual([1, 2, 3, 4]);
    expect(readState('t1')).toEqual(state);
    expect(machine.calls).toContain('ip netns del l4f-t1-node4');
  });

  test('lab - an add-node interrupted while it waits for the router: it stops waiting and undoes itself', async () => {
    const state = labState();
    writeState(state);
    const abort = new AbortController();
    const interrupted = new Error('interrupted by SIGTERM');
    const start = vi.spyOn(netnsRuntime, 'startHost').mockResolvedValue();
    mkdirSync(join(dir, 't1', 'router'), { recursive: true }); // the router's bgpd.conf, rewritten with the neighbor
    const timer = setTimeout(() => abort.abort(interrupted), 300);
    try {
      // Not interrupted, the wait would last its 10 s and fail as a timeout: the abort ends it at once.
      await expect(Lab.open('t1').addNode(10_000, abort.signal)).rejects.toThrow('interrupted by SIGTERM');
    } finally {
      clearTimeout(timer);
      start.mockRestore();
    }
    expect(readState('t1')).toEqual(state);
  });

  test('lab - an add-node interrupted before it starts changes nothing', async () => {
    const state = labState();
    writeState(state);
    const abort = new AbortController();
    abort.abort(new Error('interrupted by SIGINT'));
    await expect(Lab.open('t1').addNode(2_000, abort.signal)).rejects.toThrow('interrupted by SIGINT');
    expect(readState('t1')).toEqual(state);
    expect(machine.calls).not.toContain('ip netns del l4f-t1-node4');
  });
});
