/** The node's etcd session (connection.ts) on the in-memory store; time runs on a manual clock. */
import { MemoryFleetStore, type NodeRegistrationOptions, StoreError } from '@l4fleet/store';
import pino from 'pino';
import { describe, expect, test } from 'vitest';
import { createManualClock } from '../clock.js';
import { createAgentMetrics } from '../observe/metrics.js';
import { createEtcdConnection, ETCD_RETRY_MS, type EtcdConnectionOptions } from './connection.js';
import { createFailStatic } from './fail-static.js';
import { createReports } from './reports.js';

function setup(store: MemoryFleetStore, extra: Partial<EtcdConnectionOptions> = {}) {
  const clock = createManualClock(1_000_000);
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
  const metrics = createAgentMetrics({ node: 'lb1', fleet: 'default', defaultMetrics: false });
  const failStaticChanges: [boolean, string][] = [];
  const unreachable: string[] = [];
  const failStatic = createFailStatic({
    store,
    clock,
    probeTimeoutMs: 2_000,
    metrics,
    logger,
    revision: () => 0,
    onFailStatic: (fs, why) => failStaticChanges.push([fs, why]),
    onUnreachable: (why) => unreachable.push(why),
  });
  const reports = createReports({
    clock,
    logger,
    observed: () => new Map(),
    status: () => ({ tables: {}, announced: [], bgp: {}, failStatic: failStatic.failStatic, desiredRevision: 0 }),
  });
  let attempts = 0;
  const counted = Object.create(store) as MemoryFleetStore;
  counted.registerNode = (info, options) => {
    attempts += 1;
    return store.registerNode(info, options);
  };
  const connection = createEtcdConnection({
    store: counted,
    node: { name: 'lb1', address: '198.18.0.1' },
    leaseTtlS: 10,
    clock,
    logger,
    failStatic,
    reports,
    rejected: { report: () => undefined, note: () => undefined, summary: undefined },
    onDesired: () => undefined,
    onDecided: () => undefined,
    onNodes: () => undefined,
    onHistory: () => undefined,
    onStateRejected: () => undefined,
    ...extra,
  });
  return { clock, lines, failStatic, failStaticChanges, unreachable, reports, connection, attempts: () => attempts };
}

describe('etcd connection - a node.name another agent holds', () => {
  // Refused as any registration failure was: each second fail-static entered ('registerFailed', etcdConnected 0 while
  // etcd answered; with a state file the probe left it again, and a starting node served its file under a name
  // another node holds), a warning, and a lease granted and revoked against etcd.
  test('etcd connection - a refused name is no outage: no fail-static, few warnings that say what to do, backed off', async () => {
    const fleet = new MemoryFleetStore();
    const holder = await fleet.client().registerNode({ name: 'lb1', address: '198.18.0.2' });
    const t = setup(fleet.client());
    t.failStatic.startProbing(0); // as with a state file: the probe answers meanwhile
    let connected = false;
    void t.connection.connect().then(() => void (connected = true));
    for (let s = 0; s < 60; s += 1) await t.clock.advance(1_000);
    expect(connected).toBe(false);
    expect(t.failStaticChanges).toEqual([]);
    expect(t.unreachable).toEqual([]);
    expect(t.failStatic.etcdOk).toBe(true);
    const warned = t.lines.filter((l) => Number(l.level) >= 40 && String(l.event).startsWith('register'));
    expect(warned.length).toBeGreaterThanOrEqual(1);
    expect(warned.length).toBeLessThanOrEqual(2);
    const first = warned[0] ?? {};
    expect(first.event).toBe('registerRefused');
    expect(first.err).toMatch(/node\.name "lb1" is already registered by 198\.18\.0\.2/);
    expect(first.hint).toMatch(/node names must be unique/);
    expect(first.hint).toMatch(/etcdctl del <etcd\.prefix>\/v1\/nodes\/lb1/);
    expect(t.attempts()).toBeLessThanOrEqual(10);
    // The holder stops: the name is taken within one backoff.
    await holder.close();
    for (let s = 0; s < 30 && !connected; s += 1) await t.clock.advance(1_000);
    expect(connected).toBe(true);
    expect((await fleet.listNodes()).map((n) => n.record?.address)).toEqual(['198.18.0.1']);
    expect(t.failStaticChanges).toEqual([]);
    t.failStatic.close();
    t.reports.close();
    await t.connection.close();
  });
});

describe('etcd connection - a serving node whose node.name another address took', () => {
  const holderOf = async (fleet: MemoryFleetStore) =>
    fleet.client().registerNode({ name: 'lb1', address: '198.18.0.2' });

  // Started from its state file while etcd was down, the node served and was ready; etcd back with the name held by
  // another address, it looped in register() with etcdConnected true: no watches ever, serving an old revision.
  test('etcd connection - serving the state file, a refused name is taken: nodeNameTaken, onNameTaken, no watches', async () => {
    const fleet = new MemoryFleetStore();
    await holderOf(fleet);
    const taken: StoreError[] = [];
    let watched = 0;
    const store = fleet.client();
    const watching = Object.create(store) as MemoryFleetStore;
    watching.watchDesired = (l) => {
      watched += 1;
      return store.watchDesired(l);
    };
    const t = setup(watching, { servingStateFile: () => true, onNameTaken: (err) => void taken.push(err) });
    let connected = false;
    void t.connection.connect().then(() => void (connected = true));
    for (let s = 0; s < 5 && !connected; s += 1) await t.clock.advance(1_000);
    expect(connected).toBe(true);
    expect(taken).toHaveLength(1);
    expect(taken[0]).toMatchObject({ code: 'CONFLICT' });
    expect(t.attempts()).toBe(1);
    expect(watched).toBe(0);
    const errors = t.lines.filter((l) => l.event === 'nodeNameTaken');
    expect(errors).toHaveLength(1);
    expect(errors[0]?.level).toBe(50);
    expect(errors[0]?.key).toBe('nodes/lb1');
    expect(errors[0]?.err).toMatch(/node\.name "lb1" is already registered by 198\.18\.0\.2/);
    await t.clock.advance(60_000);
    expect(t.attempts()).toBe(1);
    t.failStatic.close();
    t.reports.close();
    await t.connection.close();
  });

  // The node restarted quickly after a crash, serving its state file; its previous process's lease expired while
  // it registered, so the fenced write of its record failed. That race was taken as the name taken: drain, exit 1.
  test("etcd connection - a 'changed while registering' CONFLICT while serving the state file is retried, not taken", async () => {
    const fleet = new MemoryFleetStore();
    const store = fleet.client();
    let calls = 0;
    const racing = Object.create(store) as MemoryFleetStore;
    racing.registerNode = async (info, o) => {
      calls += 1;
      if (calls === 1) {
        throw new StoreError('CONFLICT', 'register node lb1: nodes/lb1 changed while registering', {
          key: 'nodes/lb1',
        });
      }
      return store.registerNode(info, o);
    };
    const taken: StoreError[] = [];
    const t = setup(racing, { servingStateFile: () => true, onNameTaken: (err) => void taken.push(err) });
    let connected = false;
    void t.connection.connect().then(() => void (connected = true));
    for (let s = 0; s < 10 && !connected; s += 1) await t.clock.advance(1_000);
    expect(connected).toBe(true);
    expect(taken).toEqual([]);
    expect(t.connection.nameTaken).toBe(false);
    expect(t.attempts()).toBe(2);
    expect((await fleet.listNodes()).map((n) => n.record?.address)).toEqual(['198.18.0.1']);
    expect(t.lines.filter((l) => l.event === 'nodeNameTaken' || l.event === 'registerRefused')).toEqual([]);
    t.failStatic.close();
    t.reports.close();
    await t.connection.close();
  });

  // The registration's own finding (a re-registration refused, a record held by another address at a renewal).
  test('etcd connection - the registration finding the name taken: nodeNameTaken once, onNameTaken', async () => {
    const fleet = new MemoryFleetStore();
    const store = fleet.client();
    let options: NodeRegistrationOptions | undefined;
    const capturing = Object.create(store) as MemoryFleetStore;
    capturing.registerNode = (info, o) => {
      options = o;
      return store.registerNode(info, o);
    };
    const taken: StoreError[] = [];
    const t = setup(capturing, { onNameTaken: (err) => void taken.push(err) });
    await t.connection.connect();
    const err = new StoreError(
      'CONFLICT',
      'register node lb1: nodes/lb1: node.name "lb1" is already registered by 198.18.0.2',
      {
        key: 'nodes/lb1',
      },
    );
    options?.onNameTaken?.(err);
    options?.onNameTaken?.(err);
    expect(taken).toEqual([err]);
    expect(t.lines.filter((l) => l.event === 'nodeNameTaken' && l.level === 50)).toHaveLength(1);
    t.failStatic.close();
    t.reports.close();
    await t.connection.close();
  });
});

describe('etcd connection - refusals of node.name, backed off and warned', () => {
  const refusals = (lines: Record<string, unknown>[]) => lines.filter((l) => l.event === 'registerRefused');
  const warnings = (lines: Record<string, unknown>[]) => refusals(lines).filter((l) => l.level === 40);

  test('etcd connection - a CONFLICT after a real outage: registerFailed, then registerRefused, etcd reachable', async () => {
    const fleet = new MemoryFleetStore();
    await fleet.client().registerNode({ name: 'lb1', address: '198.18.0.2' });
    const store = fleet.client();
    let calls = 0;
    const flaky = Object.create(store) as MemoryFleetStore;
    flaky.registerNode = async (info, o) => {
      calls += 1;
      if (calls === 1) throw new StoreError('UNAVAILABLE', 'etcd unavailable');
      return store.registerNode(info, o);
    };
    const t = setup(flaky);
    void t.connection.connect();
    for (let s = 0; s < 3; s += 1) await t.clock.advance(1_000);
    const events = t.lines.map((l) => l.event).filter((e) => e === 'registerFailed' || e === 'registerRefused');
    expect(events.slice(0, 2)).toEqual(['registerFailed', 'registerRefused']);
    expect(t.failStatic.etcdOk).toBe(true);
    expect(t.failStaticChanges.map(([fs]) => fs)).toEqual([true, false]);
    t.failStatic.close();
    t.reports.close();
    await t.connection.close();
  });

  test('etcd connection - a lease TTL of 3,600 s keeps the pause at REGISTER_REFUSED_MAX_MS (30 s)', async () => {
    const fleet = new MemoryFleetStore();
    await fleet.client().registerNode({ name: 'lb1', address: '198.18.0.2' });
    const t = setup(fleet.client(), { leaseTtlS: 3_600 });
    void t.connection.connect();
    for (let s = 0; s < 300; s += 1) await t.clock.advance(1_000);
    const pauses = refusals(t.lines).map((l) => Number(l.retryMs));
    expect(Math.max(...pauses)).toBe(30_000);
    t.failStatic.close();
    t.reports.close();
    await t.connection.close();
  });

  test('etcd connection - a lease TTL of 10 s caps the pause at 10 s', async () => {
    const fleet = new MemoryFleetStore();
    await fleet.client().registerNode({ name: 'lb1', address: '198.18.0.2' });
    const t = setup(fleet.client(), { leaseTtlS: 10 });
    void t.connection.connect();
    for (let s = 0; s < 120; s += 1) await t.clock.advance(1_000);
    const pauses = refusals(t.lines).map((l) => Number(l.retryMs));
    expect(pauses.slice(0, 5)).toEqual([1_000, 2_000, 4_000, 8_000, 10_000]);
    expect(Math.max(...pauses)).toBe(10_000);
    t.failStatic.close();
    t.reports.close();
    await t.connection.close();
  });

  test('etcd connection - the same holder is warned again after a minute, with the refusals since', async () => {
    const fleet = new MemoryFleetStore();
    await fleet.client().registerNode({ name: 'lb1', address: '198.18.0.2' });
    const t = setup(fleet.client());
    void t.connection.connect();
    for (let s = 0; s < 59; s += 1) await t.clock.advance(1_000);
    expect(warnings(t.lines)).toHaveLength(1);
    for (let s = 0; s < 12; s += 1) await t.clock.advance(1_000);
    const warned = warnings(t.lines);
    expect(warned).toHaveLength(2);
    expect(Number(warned[1]?.refusals)).toBeGreaterThan(1);
    expect(warned[1]?.refusals).toBe(refusals(t.lines).length - 1);
    t.failStatic.close();
    t.reports.close();
    await t.connection.close();
  });

  test('etcd connection - another holder is warned at once', async () => {
    const fleet = new MemoryFleetStore();
    const first = await fleet.client().registerNode({ name: 'lb1', address: '198.18.0.2' });
    const t = setup(fleet.client());
    void t.connection.connect();
    for (let s = 0; s < 5; s += 1) await t.clock.advance(1_000);
    expect(warnings(t.lines)).toHaveLength(1);
    await first.close();
    await fleet.client().registerNode({ name: 'lb1', address: '198.18.0.3' });
    for (let s = 0; s < 20; s += 1) await t.clock.advance(1_000);
    const warned = warnings(t.lines);
    expect(warned).toHaveLength(2);
    expect(warned[1]?.err).toMatch(/already registered by 198\.18\.0\.3/);
    t.failStatic.close();
    t.reports.close();
    await t.connection.close();
  });
});

// A 'changed while registering' CONFLICT (a race, not a refusal or an outage) is retried at once, after ETCD_RETRY_MS
// if it recurs; it shows etcd answered, and another error between two races starts the count again.
describe('etcd connection - registration races', () => {
  const race = () =>
    new StoreError('CONFLICT', 'register node lb1: nodes/lb1 changed while registering', { key: 'nodes/lb1' });
  /** registerNode answering per `script` ('race', 'down', then the store): when each call came, and etcdOk then. */
  function scripted(script: ('race' | 'down')[]) {
    const fleet = new MemoryFleetStore();
    const store = fleet.client();
    const calls: { atMs: number; etcdOk: boolean }[] = [];
    const ref: { t?: ReturnType<typeof setup> } = {};
    const racing = Object.create(store) as MemoryFleetStore;
    racing.registerNode = async (info, o) => {
      const t = ref.t as ReturnType<typeof setup>;
      calls.push({ atMs: t.clock.monoMs(), etcdOk: t.failStatic.etcdOk });
      const next = script[calls.length - 1];
      if (next === 'race') throw race();
      if (next === 'down') throw new StoreError('UNAVAILABLE', 'etcd unavailable');
      return store.registerNode(info, o);
    };
    ref.t = setup(racing);
    return { t: ref.t, calls };
  }
  async function connect(t: ReturnType<typeof setup>) {
    let connected = false;
    void t.connection.connect().then(() => void (connected = true));
    for (let s = 0; s < 100 && !connected; s += 1) await t.clock.advance(100);
    expect(connected).toBe(true);
  }
  async function close(t: ReturnType<typeof setup>) {
    t.failStatic.close();
    t.reports.close();
    await t.connection.close();
  }

  test('etcd connection - three races in a row: the second retried at once, the third after ETCD_RETRY_MS', async () => {
    const { t, calls } = scripted(['race', 'race', 'race']);
    await connect(t);
    const start = calls[0]?.atMs ?? 0;
    expect(calls.map((c) => c.atMs - start)).toEqual([0, 0, ETCD_RETRY_MS, 2 * ETCD_RETRY_MS]);
    await close(t);
  });

  test('etcd connection - a race after an outage: etcd reachable again', async () => {
    const { t, calls } = scripted(['down', 'race', 'race']);
    await connect(t);
    // Third call: right after the race (the second), before any registration succeeded.
    expect(calls.map((c) => c.etcdOk)).toEqual([true, false, true, true]);
    await close(t);
  });

  test('etcd connection - race, another error, race: the second race is retried at once', async () => {
    const { t, calls } = scripted(['race', 'down', 'race']);
    await connect(t);
    const start = calls[0]?.atMs ?? 0;
    expect(calls.map((c) => c.atMs - start)).toEqual([0, 0, ETCD_RETRY_MS, ETCD_RETRY_MS]);
    await close(t);
  });
});
