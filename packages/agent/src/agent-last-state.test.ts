/**
 * Fail-static across restarts: the agent saves its last good inputs and, restarted while etcd is unreachable,
 * serves them (same tables, same routes, no flap) until etcd answers again.
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createFakeSpeaker, type FakeSpeaker } from '@l4fleet/bgp';
import type { Fleet } from '@l4fleet/config';
import { createRecordingDataPlane, type RecordingDataPlane } from '@l4fleet/dataplane';
import { type FleetStore, MemoryFleetStore, StoreError } from '@l4fleet/store';
import { until as waitUntil } from '@l4fleet/test-support/eventually';
import { twoPoolFleet } from '@l4fleet/test-support/fleets';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { type Agent, createAgent } from './agent.js';
import { parseAgentConfig } from './config/parse.js';
import type { AgentEvent } from './events/subjects.js';
import { STATE_SAVE_DELAY_MS } from './persist/keeper.js';
import { createLastStateFile, type LastStateStore } from './persist/last-state.js';
import { runAgent } from './runtime.js';

const logger = pino({ level: process.env.L4FLEET_TEST_LOG ?? 'silent' });
const ROUTES = ['198.51.100.10/32', '198.51.100.11/32'];

const fleetFile: Fleet = twoPoolFleet({ type: 'none' });

/**
 * The in-memory store behind a switch: while `down`, every call fails as an unreachable etcd would. `downAfter(m)`
 * turns it down once a call of method `m` answered (etcd lost part-way through the agent's start).
 */
function switchable(inner: MemoryFleetStore): {
  store: FleetStore;
  setDown(d: boolean): void;
  downAfter(method: string): void;
  calls: () => number;
} {
  let down = false;
  let failed = 0;
  let after: string | undefined;
  const store = new Proxy(inner, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown;
      if (typeof v !== 'function' || prop === 'close') return typeof v === 'function' ? v.bind(target) : v;
      return (...args: unknown[]) => {
        if (down) {
          failed += 1;
          return Promise.reject(new StoreError('UNAVAILABLE', `etcd ${String(prop)}: connect ECONNREFUSED`));
        }
        const r = (v as (...a: unknown[]) => unknown).apply(target, args);
        if (prop === after) {
          after = undefined;
          down = true;
        }
        return r;
      };
    },
  });
  return { store, setDown: (d) => void (down = d), downAfter: (m) => void (after = m), calls: () => failed };
}

interface Node {
  agent: Agent;
  speaker: FakeSpeaker;
  dataPlane: RecordingDataPlane;
  events: AgentEvent[];
}

const running: Agent[] = [];
let dir = '';
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'l4fleet-agent-state-'));
});
afterEach(async () => {
  for (const a of running.splice(0)) await a.close();
  await rm(dir, { recursive: true, force: true });
});

const stateFile = (maxAgeS = 3_600): LastStateStore =>
  createLastStateFile({
    dir,
    identity: { node: 'n1', fleet: 'default', etcdPrefix: '/l4fleet' },
    maxBytes: 1 << 24,
    maxAgeS,
  });

function startNode(
  store: FleetStore,
  reuse?: { speaker: FakeSpeaker; dataPlane: RecordingDataPlane },
  lastState: LastStateStore | null = stateFile(),
  log = logger,
): Node {
  const speaker = reuse?.speaker ?? createFakeSpeaker();
  const dataPlane = reuse?.dataPlane ?? createRecordingDataPlane({ requireSamePort: false });
  const events: AgentEvent[] = [];
  const agent = createAgent({
    config: parseAgentConfig({
      node: { name: 'n1', interface: 'eth0', address: '198.18.0.11' },
      bgp: { asn: 65001, peers: [{ address: '198.18.0.1', asn: 65000 }], gracefulShutdownMs: 150 },
      etcd: { endpoints: ['http://127.0.0.1:2379'], dialTimeoutMs: 200 },
      dataplane: { driver: 'dry-run' },
      drain: { forwardAfterWithdrawMs: 50 },
    }),
    store,
    speaker,
    dataPlane,
    logger: log,
    // Health checks see every member up (no real probe leaves the test); decided/ alone says who is down.
    probe: async () => ({ ok: true, latencyMs: 1 }),
    onEvent: (e) => events.push(e),
    ...(lastState ? { lastState } : {}),
  });
  running.push(agent);
  return { agent, speaker, dataPlane, events };
}

/** Polls until `fn` is truthy (5 s, every 10 ms). */
const until = <T>(what: string, fn: () => T | Promise<T>, timeoutMs = 5_000) => waitUntil(what, fn, timeoutMs, 10);

const saved = async (f: LastStateStore, revision: number) =>
  (await f.load().catch(() => undefined))?.revision === revision;
const metric = (n: Node, name: string) => n.agent.metrics.registry.getSingleMetricAsString(name);

/** A node that served from etcd and saved its state, then stopped (as a crash or a restart does). */
async function servedOnce(inner: MemoryFleetStore, store: FleetStore) {
  const { revision } = await inner.getDesired();
  const first = startNode(store);
  await first.agent.start();
  await first.agent.whenReady(5_000);
  await until('state file saved', () => saved(stateFile(), revision));
  await first.agent.close();
  return first;
}

describe('agent - last good state across restarts', () => {
  test('restart while etcd is unreachable: same tables and routes, fail-static, no flap; etcd back resumes', async () => {
    const inner = new MemoryFleetStore();
    const { revision } = await inner.apply(fleetFile);
    const net = switchable(inner);
    const first = startNode(net.store);
    await first.agent.start();
    await first.agent.whenReady(5_000);
    const tables = first.agent.status().tables;
    await until('state file saved', () => saved(stateFile(), revision));
    await first.agent.close();

    net.setDown(true);
    const again = startNode(net.store, { speaker: first.speaker, dataPlane: first.dataPlane });
    const historyBefore = first.speaker.history.length;
    const appliesBefore = first.dataPlane.applied.length;
    await again.agent.start(); // returns: serving the file, not waiting for etcd
    await again.agent.whenReady(5_000);
    await until('routes set', () => first.speaker.history.length > historyBefore);
    const s = again.agent.status();
    expect(s).toMatchObject({
      state: 'serving',
      ready: true,
      failStatic: true,
      etcdConnected: false,
      inputSource: 'lastState',
      desiredRevision: revision,
    });
    expect(s.tables).toEqual(tables);
    expect(s.routes).toEqual(ROUTES);
    expect(await metric(again, 'l4fleet_fail_static')).toMatch(/ 1$/m);
    expect(await metric(again, 'l4fleet_last_state_serving')).toMatch(/ 1$/m);
    expect(again.events.some((e) => e.kind === 'node.state' && (e.data as { failStatic: boolean }).failStatic)).toBe(
      true,
    );
    // one apply of the same tables (the nftables driver leaves matching kernel state as it is)
    expect(first.dataPlane.applied.length).toBe(appliesBefore + 1);
    expect(first.dataPlane.current.length).toBe(2);

    net.setDown(false);
    await until('etcd inputs', () => again.agent.status().inputSource === 'etcd' && !again.agent.status().failStatic);
    expect(await metric(again, 'l4fleet_last_state_serving')).toMatch(/ 0$/m);
    // no flap: every route set since the restart held both routes, none of them with a graceful-shutdown community
    const after = first.speaker.history.slice(historyBefore);
    expect(after.length).toBeGreaterThan(0);
    for (const set of after) expect([...set].sort()).toEqual(ROUTES);
    expect(first.speaker.advertised.every((a) => !a.communities?.includes('65535:0'))).toBe(true);
    expect(again.agent.status().tables).toEqual(tables);
    expect(first.dataPlane.applied.length).toBe(appliesBefore + 1); // etcd's identical inputs: no re-apply

    // resumes from etcd: a change is applied and saved
    const { revision: r2 } = await inner.apply({ ...fleetFile, vips: fleetFile.vips.slice(0, 1) });
    await until('VIP removed', () => first.speaker.advertised.length === 1);
    await until('new state saved', () => saved(stateFile(), r2));
  });

  test('etcd changed while the agent was away: the file serves first, then etcd replaces it', async () => {
    const inner = new MemoryFleetStore();
    await inner.apply(fleetFile);
    const net = switchable(inner);
    const first = await servedOnce(inner, net.store);
    const { revision: r2 } = await inner.apply({ ...fleetFile, vips: fleetFile.vips.slice(1) });
    net.setDown(true);
    const again = startNode(net.store, { speaker: first.speaker, dataPlane: first.dataPlane });
    await again.agent.start();
    await again.agent.whenReady(5_000);
    expect(again.agent.status().routes).toEqual(ROUTES);
    net.setDown(false);
    await until('revision from etcd', () => again.agent.status().desiredRevision === r2);
    await until('web withdrawn', () => first.speaker.advertised.length === 1);
    expect(again.agent.status().routes).toEqual(['198.51.100.11/32']);
  });

  test('the drain flag is part of the state: a drained node restarting without etcd stays withdrawn', async () => {
    const inner = new MemoryFleetStore();
    await inner.apply(fleetFile);
    await inner.setNodeDrain('n1', true);
    const net = switchable(inner);
    const first = await servedOnce(inner, net.store);
    expect(first.speaker.advertised).toEqual([]);
    net.setDown(true);
    const again = startNode(net.store, { speaker: first.speaker, dataPlane: first.dataPlane });
    await again.agent.start();
    await again.agent.whenReady(5_000);
    expect(again.agent.status()).toMatchObject({ state: 'drained', inputSource: 'lastState' });
    expect(first.speaker.advertised).toEqual([]);
    expect(first.dataPlane.current.length).toBe(2);
  });

  test('restart while etcd answers but refuses the desired state: the file serves (as a running node keeps its last good state)', async () => {
    const inner = new MemoryFleetStore();
    const { revision } = await inner.apply(fleetFile);
    const net = switchable(inner);
    const first = await servedOnce(inner, net.store);
    inner.corruptDesired();
    const again = startNode(net.store, { speaker: first.speaker, dataPlane: first.dataPlane });
    await again.agent.start();
    await again.agent.whenReady(5_000);
    expect(again.agent.status()).toMatchObject({
      state: 'serving',
      failStatic: false,
      inputSource: 'lastState',
      desiredRevision: revision,
      routes: ROUTES,
    });
    expect(await metric(again, 'l4fleet_last_state_serving')).toMatch(/ 1$/m);
    // The operator repairs the desired state: etcd's inputs replace the file's, and saving resumes.
    const { revision: r2 } = await inner.apply({ ...fleetFile, vips: fleetFile.vips.slice(1) });
    await until('etcd inputs', () => again.agent.status().inputSource === 'etcd');
    await until('web withdrawn', () => first.speaker.advertised.length === 1);
    await until('new state saved', () => saved(stateFile(), r2));
  });

  test('etcd lost part-way through the start (desired delivered, the rest not): the file fills the rest', async () => {
    const inner = new MemoryFleetStore();
    await inner.apply(fleetFile);
    const net = switchable(inner);
    const first = await servedOnce(inner, net.store);
    // etcd changed while the node was away: the desired state it delivers is newer than the file's and stays.
    const { revision: r2 } = await inner.apply({ ...fleetFile, vips: fleetFile.vips.slice(1) });
    net.downAfter('watchDesired');
    const lines: { event?: string; inputs?: string[] }[] = [];
    const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
    const again = startNode(net.store, { speaker: first.speaker, dataPlane: first.dataPlane }, stateFile(), log);
    await again.agent.start();
    await again.agent.whenReady(5_000);
    expect(again.agent.status()).toMatchObject({
      state: 'serving',
      failStatic: true,
      inputSource: 'lastState',
      desiredRevision: r2,
      routes: ['198.51.100.11/32'],
    });
    expect(lines.find((l) => l.event === 'lastStateRestored')?.inputs).toEqual(['decided', 'nodes', 'history']);
    net.setDown(false);
    await until('etcd inputs', () => again.agent.status().inputSource === 'etcd' && !again.agent.status().failStatic);
    expect(again.agent.status().routes).toEqual(['198.51.100.11/32']);
    await until('new state saved', () => saved(stateFile(), r2));
  });

  test.each([
    { name: 'no file', spoil: 'none', maxAgeS: 3_600, event: 'lastStateMissing' },
    { name: 'a corrupted file', spoil: 'truncate', maxAgeS: 3_600, event: 'lastStateIgnored' },
    { name: 'a stale file', spoil: 'none', maxAgeS: 1, event: 'lastStateIgnored' },
  ])('$name: logged ($event) and ignored; the agent waits for etcd, then serves', async (c) => {
    const inner = new MemoryFleetStore();
    await inner.apply(fleetFile);
    const net = switchable(inner);
    const file = stateFile(c.maxAgeS);
    if (c.name !== 'no file') await servedOnce(inner, net.store);
    if (c.spoil === 'truncate') await writeFile(file.path, (await readFile(file.path)).subarray(0, 200));
    if (c.maxAgeS === 1) await new Promise((r) => setTimeout(r, 1_100));
    net.setDown(true);
    const lines: { event?: string; code?: string }[] = [];
    const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
    const again = startNode(net.store, undefined, file, log);
    let done = false;
    const started = again.agent.start().then(() => (done = true));
    await until(c.event, () => lines.some((l) => l.event === c.event));
    await new Promise((r) => setTimeout(r, 300));
    expect(done).toBe(false);
    expect(again.agent.status()).toMatchObject({ state: 'starting', ready: false, inputSource: 'none' });
    expect(again.speaker.history).toEqual([]);
    expect(again.dataPlane.applied).toEqual([]);
    if (c.name === 'a stale file') expect(lines.find((l) => l.event === 'lastStateIgnored')?.code).toBe('STATE_STALE');
    if (c.spoil === 'truncate') {
      expect(lines.find((l) => l.event === 'lastStateIgnored')?.code).toBe('STATE_INVALID');
    }
    net.setDown(false);
    await started;
    await again.agent.whenReady(5_000);
    expect(again.agent.status()).toMatchObject({ state: 'serving', inputSource: 'etcd', failStatic: false });
  });

  // The switch is agent.yaml's state.enabled, read where the adapters are built (runAgent): the enabled case is
  // the control that the same setup does write a file.
  test.each([
    { enabled: true, files: ['default.n1.state.json'] },
    { enabled: false, files: [] },
  ])('runAgent with state.enabled $enabled writes $files', async ({ enabled, files }) => {
    const inner = new MemoryFleetStore();
    const { revision } = await inner.apply(fleetFile);
    const running = await runAgent(
      parseAgentConfig({
        node: { name: 'n1', interface: 'eth0', address: '198.18.0.11' },
        bgp: { asn: 65001, peers: [{ address: '198.18.0.1', asn: 65000 }] },
        etcd: { endpoints: ['http://127.0.0.1:2379'] },
        dataplane: { driver: 'dry-run' },
        metrics: { listen: '127.0.0.1:0' },
        state: { enabled, dir },
      }),
      { logger, store: inner, speaker: createFakeSpeaker(), dataPlane: createRecordingDataPlane() },
    );
    try {
      await running.agent.whenReady(5_000);
      if (enabled) await until('state file saved', () => saved(stateFile(), revision));
      else await new Promise((r) => setTimeout(r, STATE_SAVE_DELAY_MS + 300));
      expect(await readdir(dir)).toEqual(files);
    } finally {
      await running.close();
    }
  });
});

/**
 * The store refusing `decided/web` on its first read (a newer aggregator's member state this node cannot decode):
 * the store has no last good record to keep and reports the pool refused (refusedPools) until a record it reads is
 * written for it, so the state file's decisions for the pool stand in (0002).
 */
class RefusingDecided extends MemoryFleetStore {
  override async watchDecided(l: Parameters<MemoryFleetStore['watchDecided']>[0]) {
    l.onError?.(
      new StoreError('INVALID_RECORD', 'decided/web: members.c: "draining" is not up | down', { key: 'decided/web' }),
    );
    return await super.watchDecided({
      onUpdate: (d) => l.onUpdate(d.pools?.has('web') ? d : { ...d, refusedPools: new Set(['web']) }),
      ...(l.onError ? { onError: (err) => l.onError?.(err) } : {}),
    });
  }
}

const WEB_B_DOWN = new Map([
  ['web/a', 'up'],
  ['web/b', 'down'],
  ['web/c', 'up'],
  ['dns/d1', 'up'],
] as const);

/** Slots of the web VIP's table owned by member address `addr`. */
function webSlots(n: Node, addr: string): number {
  const t = n.dataPlane.current.find((v) => v.vip.address === '198.51.100.10');
  if (!t) throw new Error('no web table');
  const i = t.backends.findIndex((b) => b.address === addr);
  return i < 0 ? 0 : t.slots.filter((s) => s === i).length;
}

/** Decided status counts only for checked pools (config table.ts). */
const checkedFleet: Fleet = twoPoolFleet({ type: 'tcp', intervalMs: 100, timeoutMs: 50, rise: 1, fall: 2 });

describe('agent - a decided record refused on the first read', () => {
  test('the state file holds the pool: its decisions stand in (b stays down), logged; a good record later wins', async () => {
    const inner = new MemoryFleetStore();
    await inner.apply(checkedFleet);
    await inner.campaign('n0'); // another node aggregates: n1 only reads decided/
    await inner.writeDecided(new Map(WEB_B_DOWN));
    const first = await servedOnce(inner, inner);
    expect(webSlots(first, '198.18.0.22')).toBe(0);

    const refusing = new RefusingDecided();
    await refusing.apply(checkedFleet);
    await refusing.campaign('n0');
    await refusing.writeDecided(new Map([['dns/d1', 'up']]));
    const lines: { event?: string; pool?: string; members?: number }[] = [];
    const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
    const again = startNode(refusing, undefined, stateFile(), log);
    await again.agent.start();
    await again.agent.whenReady(5_000);
    expect(again.agent.status()).toMatchObject({ inputSource: 'etcd', decided: { 'web/b': 'down', 'dns/d1': 'up' } });
    expect(webSlots(again, '198.18.0.22')).toBe(0);
    expect(again.agent.status().tables).toEqual(first.agent.status().tables);
    expect(lines.find((l) => l.event === 'decidedFromStateFile')).toMatchObject({ pool: 'web', members: 3 });

    // A record the node can read arrives: etcd's decisions replace the file's.
    await refusing.writeDecided(
      new Map([
        ['web/a', 'up'],
        ['web/b', 'up'],
        ['web/c', 'down'],
      ]),
    );
    await until('etcd decision served', () => again.agent.status().decided['web/c'] === 'down');
    expect(again.agent.status().decided).toMatchObject({ 'web/b': 'up' });
    expect(webSlots(again, '198.18.0.22')).toBeGreaterThan(0);
  });

  // The aggregator writes decided/web with no member for a removed pool whose slow start ended: every node reading
  // it holds no decision for web, and so must this one, or it alone would count web/b down once web is back.
  test('a record with no member written for the pool: the file stops standing in (b up, as on every node)', async () => {
    const inner = new MemoryFleetStore();
    await inner.apply(checkedFleet);
    await inner.campaign('n0');
    await inner.writeDecided(new Map(WEB_B_DOWN));
    await servedOnce(inner, inner);

    const refusing = new RefusingDecided();
    await refusing.apply(checkedFleet);
    await refusing.campaign('n0');
    await refusing.writeDecided(new Map([['dns/d1', 'up']]));
    const lines: { event?: string; pool?: string }[] = [];
    const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
    const again = startNode(refusing, undefined, stateFile(), log);
    await again.agent.start();
    await again.agent.whenReady(5_000);
    expect(webSlots(again, '198.18.0.22')).toBe(0);

    await refusing.writeDecided(new Map([['dns/d1', 'up']]), { pools: ['web'] });
    await until('web decisions gone', () => again.agent.status().decided['web/b'] === undefined);
    expect(webSlots(again, '198.18.0.22')).toBeGreaterThan(0);
    expect(lines.find((l) => l.event === 'decidedPoolReadable')).toMatchObject({ pool: 'web' });
  });

  test('no state file: the pool has no decisions (its members count as up, as before), said in an error log', async () => {
    const refusing = new RefusingDecided();
    await refusing.apply(checkedFleet);
    await refusing.campaign('n0');
    const lines: { event?: string; pool?: string; reason?: string }[] = [];
    const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
    const again = startNode(refusing, undefined, null, log);
    await again.agent.start();
    await again.agent.whenReady(5_000);
    expect(webSlots(again, '198.18.0.22')).toBeGreaterThan(0);
    expect(lines.find((l) => l.event === 'decidedPoolUnknown')).toMatchObject({ pool: 'web', reason: 'no state file' });
  });
});
