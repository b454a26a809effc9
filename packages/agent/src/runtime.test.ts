/** runAgent's reads before anything starts: the TLS files the etcd client and the NATS link are handed. */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createFakeSpeaker } from '@l4fleet/bgp';
import { createRecordingDataPlane } from '@l4fleet/dataplane';
import { MemoryFleetStore, StoreError } from '@l4fleet/store';
import { twoPoolFleet } from '@l4fleet/test-support/fleets';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import { parseAgentConfig } from './config/parse.js';
import { AgentError } from './errors.js';
import { type RunningAgent, runAgent } from './runtime.js';

// The etcd stores runAgent builds itself (none passed in), each told when closed: runAgent has no store factory to
// inject, and a store left open keeps its etcd client's channels and a node's lease keepalive.
const built = vi.hoisted(() => ({ etcdStores: [] as { closes: number }[] }));
vi.mock('@l4fleet/store', async (importOriginal) => {
  const real = await importOriginal<typeof import('@l4fleet/store')>();
  class ObservedEtcdFleetStore extends real.EtcdFleetStore {
    readonly seen = { closes: 0 };
    constructor(...args: ConstructorParameters<typeof real.EtcdFleetStore>) {
      super(...args);
      built.etcdStores.push(this.seen);
    }
    override async close(): Promise<void> {
      this.seen.closes += 1;
      await super.close();
    }
  }
  return { ...real, EtcdFleetStore: ObservedEtcdFleetStore };
});

const logger = pino({ level: 'silent' });
const base = {
  node: { name: 'n1', interface: 'eth0', address: '198.18.0.11' },
  bgp: { asn: 65001, peers: [{ address: '198.18.0.1', asn: 65000 }] },
  dataplane: { driver: 'dry-run' },
  metrics: { listen: '127.0.0.1:0' },
  state: { enabled: false },
};

let dir: string;
let writer: ChildProcess | undefined;
let running: RunningAgent | undefined;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'l4fleet-runtime-'));
});
afterEach(async () => {
  try {
    // timeout leads a process group of its own: the sh blocked opening the FIFO goes with it.
    if (writer?.pid !== undefined) process.kill(-writer.pid, 'SIGKILL');
  } catch {
    // already gone
  }
  writer = undefined;
  await running?.close();
  running = undefined;
  await rm(dir, { recursive: true, force: true });
});

async function refusal(p: Promise<RunningAgent>): Promise<AgentError> {
  try {
    running = await p;
  } catch (err) {
    expect(err).toBeInstanceOf(AgentError);
    return err as AgentError;
  }
  throw new Error('expected runAgent to refuse the start');
}

// They were read with a blocking readFileSync: a FIFO held the event loop (NATS: again on every connect attempt).
describe('runAgent - etcd.tls and nats.tls', () => {
  test('a FIFO as nats.tls.ca refuses the start, never read', async () => {
    const fifo = join(dir, 'ca.fifo');
    execFileSync('mkfifo', [fifo]);
    // Should the read block, this writer ends each wait after 1 s, so the test fails instead of hanging.
    writer = spawn('timeout', ['10', 'sh', '-c', `for i in 1 2 3; do sleep 1; echo x > '${fifo}'; done`], {
      stdio: 'ignore',
    });
    const config = parseAgentConfig({
      ...base,
      etcd: { endpoints: ['http://127.0.0.1:2379'] },
      nats: { servers: ['nats://127.0.0.1:1'], tls: { ca: fifo } },
    });
    const err = await refusal(
      runAgent(config, {
        logger,
        store: new MemoryFleetStore(),
        speaker: createFakeSpeaker(),
        dataPlane: createRecordingDataPlane(),
      }),
    );
    expect(err).toMatchObject({ code: 'CONFIG_INVALID', message: `nats.tls.ca: "${fifo}" is not a regular file` });
  });

  test('a missing etcd.tls.ca refuses the start naming the field and the file', async () => {
    const ca = join(dir, 'missing-ca.pem');
    const config = parseAgentConfig({
      ...base,
      etcd: { endpoints: ['https://127.0.0.1:2379'], tls: { ca } },
    });
    const err = await refusal(
      runAgent(config, { logger, speaker: createFakeSpeaker(), dataPlane: createRecordingDataPlane() }),
    );
    expect(err).toMatchObject({ code: 'CONFIG_UNREADABLE', message: `etcd.tls.ca: "${ca}" cannot be read (ENOENT)` });
  });
});

// 'l4fleet agent' told the agent of a SIGTERM only once runAgent resolved: by then start() had made the node serve
// and announce without the graceful-shutdown community, and the drain ran after that. Aborted while starting, the
// shutdown begins at once (starting goes straight to drained: nothing announced).
describe('runAgent - a signal aborted while the agent starts', () => {
  test('the shutdown begins at once; runAgent resolves once the start settles, with the agent stopped', async () => {
    const store = new MemoryFleetStore();
    const speaker = createFakeSpeaker();
    const register = store.registerNode.bind(store);
    let called: () => void = () => undefined;
    const registering = new Promise<void>((resolve) => (called = resolve));
    let release: () => void = () => undefined;
    const released = new Promise<void>((resolve) => (release = resolve));
    store.registerNode = async (...args) => {
      called();
      await released; // the start waits here (etcd slow to answer)
      return register(...args);
    };
    const starting = new AbortController();
    const config = parseAgentConfig({
      ...base,
      etcd: { endpoints: ['http://127.0.0.1:2379'] },
      drain: { forwardAfterWithdrawMs: 0 },
    });
    const run = runAgent(config, {
      logger,
      store,
      speaker,
      dataPlane: createRecordingDataPlane(),
      signal: starting.signal,
    });
    await waitFor(registering, 'the start to register the node');
    starting.abort();
    release();
    running = await waitFor(run, 'runAgent to resolve');
    // Not serving: withdrawn and stopping (the shutdown's close may still run), never announced.
    expect(['stopping', 'stopped']).toContain(running.agent.status().state);
    await waitFor(running.shutdown(), 'the shutdown to finish');
    expect(running.agent.status().state).toBe('stopped');
    expect(speaker.history.flat()).toEqual([]);
  });

  // A SIGTERM that came before runAgent was even called (the signal already aborted): addEventListener never fires for
  // it, so runAgent checks `aborted` itself, or the agent would start, serve and announce as if no SIGTERM had come.
  test('aborted before runAgent is called: the shutdown begins at once, nothing announced', async () => {
    const store = new MemoryFleetStore();
    // Unchecked pools: their members are up from the start, so a start left alone announces both VIPs.
    await store.apply(twoPoolFleet({ type: 'none' }));
    const speaker = createFakeSpeaker();
    const starting = new AbortController();
    starting.abort();
    const config = parseAgentConfig({
      ...base,
      etcd: { endpoints: ['http://127.0.0.1:2379'] },
      drain: { forwardAfterWithdrawMs: 0 },
    });
    running = await waitFor(
      runAgent(config, { logger, store, speaker, dataPlane: createRecordingDataPlane(), signal: starting.signal }),
      'runAgent to resolve',
    );
    expect(['stopping', 'stopped']).toContain(running.agent.status().state);
    await waitFor(running.shutdown(), 'the shutdown to finish');
    expect(running.agent.status().state).toBe('stopped');
    // From starting straight to drained: no route ever set, GRACEFUL_SHUTDOWN or not.
    expect(speaker.history.flat()).toEqual([]);
  });
});

// /readyz said 200 "ready" while the data plane refused every apply since: readiness stays (a start gate; the node
// serves the tables it holds), and the body names the refused revision, the one served and why.
describe('runAgent - /readyz', () => {
  test('a data plane refusing a later revision: still 200, the body names the refusal until an apply goes through', async () => {
    const store = new MemoryFleetStore();
    const fleet = twoPoolFleet({ type: 'none' });
    await store.apply(fleet);
    const recording = createRecordingDataPlane();
    let refuse = false;
    const dataPlane = {
      ...recording,
      apply: async (t: Parameters<typeof recording.apply>[0]) => {
        if (refuse) throw new Error('table too large');
        return recording.apply(t);
      },
    };
    const config = parseAgentConfig({
      ...base,
      etcd: { endpoints: ['http://127.0.0.1:2379'] },
      drain: { forwardAfterWithdrawMs: 0 },
    });
    running = await waitFor(
      runAgent(config, { logger, store, speaker: createFakeSpeaker(), dataPlane }),
      'runAgent to resolve',
    );
    await waitFor(running.agent.whenReady(5_000), 'the agent to be ready');
    const readyz = async () => {
      const res = await fetch(`http://${running?.metricsAddress}/readyz`);
      return { status: res.status, body: (await res.text()).trim() };
    };
    expect(await readyz()).toEqual({ status: 200, body: 'ready' });
    const serving = running.agent.status().desiredRevision;
    refuse = true;
    const [p0, ...rest] = fleet.pools;
    const second = await store.apply({
      ...fleet,
      pools: [{ ...p0, members: p0?.members.slice(1) ?? [] }, ...rest] as typeof fleet.pools,
    });
    const want = `ready; data plane refused revision ${second.revision} (serving ${serving}): table too large`;
    let seen = await readyz();
    for (let i = 0; i < 200 && seen.body !== want; i++) {
      await new Promise((r) => setTimeout(r, 25));
      seen = await readyz();
    }
    expect(seen).toEqual({ status: 200, body: want });
    refuse = false;
    await running.agent.reconcile();
    expect(await readyz()).toEqual({ status: 200, body: 'ready' });
  });

  // Both at once: the refusal's text was joined to a bare "ready", dropping the fail-static part.
  test('fail-static (etcd unreachable) and an apply refused: the body says both', async () => {
    const store = new MemoryFleetStore();
    const fleet = twoPoolFleet({ type: 'none' });
    await store.apply(fleet);
    const recording = createRecordingDataPlane();
    let refuse = false;
    const dataPlane = {
      ...recording,
      apply: async (t: Parameters<typeof recording.apply>[0]) => {
        if (refuse) throw new Error('table too large');
        return recording.apply(t);
      },
    };
    const config = parseAgentConfig({
      ...base,
      etcd: { endpoints: ['http://127.0.0.1:2379'] },
      drain: { forwardAfterWithdrawMs: 0 },
    });
    running = await waitFor(
      runAgent(config, { logger, store, speaker: createFakeSpeaker(), dataPlane }),
      'runAgent to resolve',
    );
    await waitFor(running.agent.whenReady(5_000), 'the agent to be ready');
    const serving = running.agent.status().desiredRevision;
    // etcd's probe unanswered (the watches, in memory, still deliver): fail-static at the next probe (1 s).
    store.getLeader = async () => {
      throw new StoreError('UNAVAILABLE', 'etcd getLeader: connect ECONNREFUSED');
    };
    refuse = true;
    const [p0, ...rest] = fleet.pools;
    const second = await store.apply({
      ...fleet,
      pools: [{ ...p0, members: p0?.members.slice(1) ?? [] }, ...rest] as typeof fleet.pools,
    });
    const want =
      `ready (fail-static: etcd unreachable); data plane refused revision ${second.revision} ` +
      `(serving ${serving}): table too large`;
    const readyz = async () => {
      const res = await fetch(`http://${running?.metricsAddress}/readyz`);
      return { status: res.status, body: (await res.text()).trim() };
    };
    let seen = await readyz();
    for (let i = 0; i < 200 && seen.body !== want; i++) {
      await new Promise((r) => setTimeout(r, 25));
      seen = await readyz();
    }
    expect(seen).toEqual({ status: 200, body: want });
  });
});

describe('runAgent - a start that fails closes what it built', () => {
  test('metrics port in use: the speaker and the data plane are closed too', async () => {
    const busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    try {
      const port = (busy.address() as AddressInfo).port;
      const speaker = createFakeSpeaker();
      const dataPlane = createRecordingDataPlane();
      const config = parseAgentConfig({
        ...base,
        etcd: { endpoints: ['http://127.0.0.1:2379'] },
        metrics: { listen: `127.0.0.1:${port}` },
      });
      await expect(runAgent(config, { logger, store: new MemoryFleetStore(), speaker, dataPlane })).rejects.toThrow();
      expect(dataPlane.closed).toBe(true);
      await expect(speaker.setAdvertisements([])).rejects.toMatchObject({ code: 'CLOSED' });
    } finally {
      await new Promise((resolve) => busy.close(resolve));
    }
  });

  test('metrics port in use, no store given: the etcd store runAgent built is closed', async () => {
    const busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    try {
      const port = (busy.address() as AddressInfo).port;
      const config = parseAgentConfig({
        ...base,
        // Never dialled: the start fails at the metrics listener, before the agent reads anything.
        etcd: { endpoints: ['http://127.0.0.1:1'] },
        metrics: { listen: `127.0.0.1:${port}` },
      });
      built.etcdStores.length = 0;
      await expect(
        runAgent(config, { logger, speaker: createFakeSpeaker(), dataPlane: createRecordingDataPlane() }),
      ).rejects.toThrow();
      expect(built.etcdStores).toEqual([{ closes: 1 }]);
    } finally {
      await new Promise((resolve) => busy.close(resolve));
    }
  });
});

/** `p`, or a failure naming what did not happen within 10 s (never a hang). */
async function waitFor<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`waited 10 s for ${what}`)), 10_000);
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}
