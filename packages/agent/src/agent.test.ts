import { type Advertisement, BgpError, createFakeSpeaker, type FakeSpeaker } from '@l4fleet/bgp';
import type { Fleet } from '@l4fleet/config';
import { createRecordingDataPlane, type RecordingDataPlane } from '@l4fleet/dataplane';
import { MemoryFleetStore, StoreError } from '@l4fleet/store';
import { until as waitUntil } from '@l4fleet/test-support/eventually';
import { twoPoolFleet } from '@l4fleet/test-support/fleets';
import pino from 'pino';
import { afterEach, describe, expect, test } from 'vitest';
import { type Agent, createAgent } from './agent.js';
import type { AgentDeps } from './agent-api.js';
import type { Bfdd } from './bfd/bfdd.js';
import { createManualClock } from './clock.js';
import { parseAgentConfig } from './config/parse.js';
import type { AgentEvent } from './events/subjects.js';
import type { Probe } from './health/probe.js';

const logger = pino({ level: process.env.L4FLEET_TEST_LOG ?? 'silent' });
const VIP_WEB = '198.51.100.10:80/tcp';
const VIP_DNS = '198.51.100.11:53/udp';

const fleetFile: Fleet = twoPoolFleet({ type: 'tcp', intervalMs: 100, timeoutMs: 50, rise: 1, fall: 2 });

/** Which member addresses each node's probes see failing ('*' = every node). */
const failing = new Map<string, Set<string>>();
const probeFor =
  (node: string): Probe =>
  async (t) => {
    const bad = failing.get(node)?.has(t.address) || failing.get('*')?.has(t.address);
    return bad ? { ok: false, latencyMs: 1, reason: 'ECONNREFUSED' } : { ok: true, latencyMs: 1 };
  };

interface Node {
  name: string;
  agent: Agent;
  speaker: FakeSpeaker;
  dataPlane: RecordingDataPlane;
  ops: string[];
  routes: Advertisement[][];
  events: AgentEvent[];
  /** Before each data-plane apply: may wait or throw (a slow or refusing data plane). */
  gate: { beforeApply?: () => Promise<void>; beforeVerify?: () => Promise<void> };
}

const running: Agent[] = [];
afterEach(async () => {
  failing.clear();
  for (const a of running.splice(0)) await a.close();
});

function makeConfig(name: string, i: number) {
  return parseAgentConfig({
    node: { name, interface: 'eth0', address: `198.18.0.${11 + i}` },
    bgp: { asn: 65001, peers: [{ address: '198.18.0.1', asn: 65000 }], gracefulShutdownMs: 150 },
    etcd: { endpoints: ['http://127.0.0.1:2379'], leaseTtlS: 5 },
    dataplane: { driver: 'dry-run' },
    drain: { forwardAfterWithdrawMs: 50 },
  });
}

function startNode(
  store: MemoryFleetStore,
  name: string,
  i: number,
  reuse?: { speaker: FakeSpeaker; dataPlane: RecordingDataPlane },
  log: pino.Logger = logger,
  /** Deps in place of the defaults (a manual clock, a bfdd, another config). */
  more: Partial<AgentDeps> = {},
): Node {
  const speaker = reuse?.speaker ?? createFakeSpeaker();
  const dataPlane = reuse?.dataPlane ?? createRecordingDataPlane({ requireSamePort: false });
  const ops: string[] = [];
  const routes: Advertisement[][] = [];
  const events: AgentEvent[] = [];
  const gate: Node['gate'] = {};
  // Record the order of data-plane and BGP operations.
  const dp = {
    ...dataPlane,
    apply: async (d: Parameters<RecordingDataPlane['apply']>[0]) => {
      if (gate.beforeApply) {
        ops.push(`apply-start:${d.length}`);
        try {
          await gate.beforeApply();
        } catch (err) {
          ops.push('apply-fail');
          throw err;
        }
      }
      const r = await dataPlane.apply(d);
      ops.push(`apply:${d.length}`);
      return r;
    },
    verify: async () => {
      await gate.beforeVerify?.();
      return dataPlane.verify();
    },
    counters: () => dataPlane.counters(),
    close: () => dataPlane.close(),
  };
  const sp = {
    ...speaker,
    ensureGlobal: (g: Parameters<FakeSpeaker['ensureGlobal']>[0]) => speaker.ensureGlobal(g),
    setPeers: (p: Parameters<FakeSpeaker['setPeers']>[0]) => speaker.setPeers(p),
    setAdvertisements: async (advs: readonly Advertisement[]) => {
      await speaker.setAdvertisements(advs);
      routes.push([...advs]);
      ops.push(
        `routes:${advs
          .map((a) => a.prefix + (a.communities?.includes('65535:0') ? '+gshut' : ''))
          .sort()
          .join(',')}`,
      );
    },
    peerEvents: () => speaker.peerEvents(),
    peerStates: () => speaker.peerStates(),
    close: () => speaker.close(),
  };
  const agent = createAgent({
    config: makeConfig(name, i),
    store,
    speaker: sp,
    dataPlane: dp,
    logger: log,
    probe: probeFor(name),
    onEvent: (e) => events.push(e),
    ...more,
  });
  running.push(agent);
  return { name, agent, speaker, dataPlane, ops, routes, events, gate };
}

/** Polls until `fn` is truthy (5 s, every 10 ms). */
const until = <T>(what: string, fn: () => T | Promise<T>, timeoutMs = 5_000) => waitUntil(what, fn, timeoutMs, 10);

async function fleetOf(n: number, store = new MemoryFleetStore()) {
  await store.apply(fleetFile);
  const nodes = Array.from({ length: n }, (_, i) => startNode(store, `n${i + 1}`, i));
  for (const node of nodes) await node.agent.start();
  await Promise.all(nodes.map((node) => node.agent.whenReady(5_000)));
  return { store, nodes };
}

describe('agent - serving', () => {
  test('programs the data plane first and announces after', async () => {
    const { nodes } = await fleetOf(1);
    const n = nodes[0] as Node;
    await until('routes', () => n.ops.some((o) => o.startsWith('routes:')));
    const firstApply = n.ops.findIndex((o) => o.startsWith('apply:'));
    const firstRoutes = n.ops.findIndex((o) => o.startsWith('routes:198'));
    expect(firstApply).toBeGreaterThanOrEqual(0);
    expect(firstApply).toBeLessThan(firstRoutes);
    expect(n.speaker.advertised.map((a) => [a.prefix, a.nextHop])).toEqual([
      ['198.51.100.10/32', '198.18.0.11'],
      ['198.51.100.11/32', '198.18.0.11'],
    ]);
    expect(n.speaker.global).toMatchObject({ asn: 65001, routerId: '198.18.0.11' });
    const s = n.agent.status();
    expect(s).toMatchObject({ state: 'serving', ready: true, failStatic: false });
    expect(s.announced).toEqual([VIP_WEB, VIP_DNS].sort());
    expect(n.events.map((e) => e.kind)).toEqual(
      expect.arrayContaining(['node.state', 'table.applied', 'vip.announced']),
    );
  });

  // pino writes a key bound twice twice; the CLI's logger binds `node` and each component its `component`, and log
  // pipelines with strict duplicate-field checks (Elasticsearch) reject such lines.
  test('every log line binds each key once (node, component), with the caller binding node already', async () => {
    const raw: string[] = [];
    const log = pino({ level: 'debug', base: { node: 'n1' } }, { write: (l: string) => void raw.push(l) });
    const store = new MemoryFleetStore();
    await store.apply(fleetFile);
    // BFD on, with a bfdd whose sessions come up when configured: the controller logs the peer it configures.
    const sessions = new Map<string, string>();
    const bfdd: Bfdd = {
      sessions: async () => [...sessions].map(([peer, local]) => ({ peer, local, status: 'up', sinceS: 0 })),
      configure: async (p) => void sessions.set(p.address, p.localAddress),
      remove: async (p) => void sessions.delete(p.address),
    };
    const config = parseAgentConfig({
      node: { name: 'n1', interface: 'eth0', address: '198.18.0.11' },
      bgp: { asn: 65001, peers: [{ address: '198.18.0.1', asn: 65000 }], gracefulShutdownMs: 150 },
      bfd: { enabled: true },
      etcd: { endpoints: ['http://127.0.0.1:2379'], leaseTtlS: 5 },
      dataplane: { driver: 'dry-run' },
      drain: { forwardAfterWithdrawMs: 50 },
    });
    const n = startNode(store, 'n1', 0, undefined, log, { bfdd, config });
    await n.agent.start();
    await n.agent.whenReady(5_000);
    await until('routes', () => n.ops.some((o) => o.startsWith('routes:198')));
    // A member going down: the health checker logs what it observed.
    failing.set('n1', new Set(['198.18.0.21']));
    await until('web/a observed down', () => n.agent.status().observed['web/a'] === 'down');
    const componentsOf = () => new Set(raw.map((l) => (JSON.parse(l) as { component?: string }).component));
    await until('a bfd line', () => componentsOf().has('bfd'));
    // The components whose lines are checked: the agent's own and those naming their own (the health checker's
    // and the BFD controller's are bound by the agent and by the controller itself, from the agent's base logger).
    expect([...componentsOf()]).toEqual(expect.arrayContaining(['agent', 'serve', 'aggregator', 'health', 'bfd']));
    const repeated = raw.filter(
      (l) => (l.match(/"node":/g) ?? []).length > 1 || (l.match(/"component":/g) ?? []).length > 1,
    );
    expect(repeated).toEqual([]);
  });

  test('a write that moves no table: nothing programmed, the node reports the new revision (status, metric)', async () => {
    const { store, nodes } = await fleetOf(1);
    const n = nodes[0] as Node;
    const before = await store.getDesired();
    await until('first revision', () => n.agent.status().desiredRevision === before.revision);
    const applies = n.ops.filter((o) => o.startsWith('apply:')).length;
    // A health check's interval: the same tables.
    const slower = {
      ...before.fleet,
      pools: before.fleet.pools.map((p) => ({ ...p, healthCheck: { ...p.healthCheck, intervalMs: 3_000 } })),
    };
    const r = await store.apply(slower, { expectRevision: before.revision });
    await until('new revision', () => n.agent.status().desiredRevision === r.revision);
    expect(n.ops.filter((o) => o.startsWith('apply:')).length).toBe(applies);
    expect(await n.agent.metrics.registry.getSingleMetricAsString('l4fleet_desired_revision')).toMatch(
      new RegExp(`l4fleet_desired_revision\\{[^}]*\\} ${r.revision}$`, 'm'),
    );
  });

  test('a member failing on every node is decided down everywhere and the tables stay identical', async () => {
    const { nodes } = await fleetOf(3);
    const before = nodes.map((n) => n.agent.status().tables[VIP_WEB]);
    expect(new Set(before).size).toBe(1);
    failing.set('*', new Set(['198.18.0.21']));
    await until('web/a down on every node', () => nodes.every((n) => n.agent.status().decided['web/a'] === 'down'));
    await until('tables rebuilt', () => nodes.every((n) => n.agent.status().tables[VIP_WEB] !== before[0]));
    const after = nodes.map((n) => n.agent.status().tables[VIP_WEB]);
    expect(new Set(after).size).toBe(1);
    // the backend is out of every node's data plane table (weight 0: no slot)
    for (const n of nodes) {
      const t = n.dataPlane.current.find((x) => x.vip.port === 80);
      const owners = new Set(Array.from(t?.slots ?? [], (s) => t?.backends[s]?.name));
      expect(owners).toEqual(new Set(['b', 'c']));
    }
    failing.clear();
    await until('web/a up again', () => nodes.every((n) => n.agent.status().decided['web/a'] === 'up'));
    await until('tables back', () => nodes.every((n) => n.agent.status().tables[VIP_WEB] === before[0]));
  });

  test('one node alone seeing a member fail does not flip it (majority of live nodes)', async () => {
    const { nodes } = await fleetOf(3);
    failing.set('n1', new Set(['198.18.0.22']));
    await until('n1 observes web/b down', () => nodes[0]?.agent.status().observed['web/b'] === 'down');
    await new Promise((r) => setTimeout(r, 300));
    for (const n of nodes) expect(n.agent.status().decided['web/b']).toBe('up');
  });

  test('a VIP with no usable backend is withdrawn before its table is emptied (no blackhole)', async () => {
    const { nodes } = await fleetOf(1);
    const n = nodes[0] as Node;
    n.ops.length = 0;
    failing.set('*', new Set(['198.18.0.21', '198.18.0.22', '198.18.0.23']));
    await until('web withdrawn', () => !n.speaker.advertised.some((a) => a.prefix === '198.51.100.10/32'), 5_000);
    await until('tables applied', () => n.ops.some((o) => o.startsWith('apply:')));
    const withdraw = n.ops.indexOf('routes:198.51.100.11/32');
    const apply = n.ops.findLastIndex((o) => o.startsWith('apply:'));
    expect(withdraw).toBeGreaterThanOrEqual(0);
    expect(withdraw).toBeLessThan(apply);
    expect(n.agent.status().announced).toEqual([VIP_DNS]);
    expect(n.events.some((e) => e.kind === 'vip.withdrawn' && (e.data as { vip: string }).vip === VIP_WEB)).toBe(true);
    failing.clear();
    await until('web re-announced', () => n.speaker.advertised.some((a) => a.prefix === '198.51.100.10/32'));
  });
});

describe('agent - vip state', () => {
  test('a disabled VIP leaves the data plane and is withdrawn (reason disabled); enabled, it is served again', async () => {
    const { store, nodes } = await fleetOf(1);
    const n = nodes[0] as Node;
    const key = (t: { vip: { address: string; port: number } }) => `${t.vip.address}:${t.vip.port}`;
    const withState = (state: 'enabled' | 'disabled'): Fleet => ({
      ...fleetFile,
      vips: fleetFile.vips.map((v) => (v.address === '198.51.100.10' ? { ...v, state } : v)),
    });
    await store.apply(withState('disabled'));
    await until('web withdrawn', () => !n.speaker.advertised.some((a) => a.prefix === '198.51.100.10/32'));
    await until('web table gone', () => !n.dataPlane.current.some((t) => key(t) === '198.51.100.10:80'));
    expect(n.agent.status().announced).toEqual([VIP_DNS]);
    const withdrawn = n.events.find((e) => e.kind === 'vip.withdrawn');
    expect(withdrawn?.data).toMatchObject({ vip: VIP_WEB, prefix: '198.51.100.10/32', reason: 'disabled' });
    // Its pool is still probed: enabling it serves the current decision at once.
    expect(Object.keys(n.agent.status().observed)).toContain('web/a');
    await store.apply(withState('enabled'));
    await until('web announced again', () => n.speaker.advertised.some((a) => a.prefix === '198.51.100.10/32'));
    expect(n.dataPlane.current.some((t) => key(t) === '198.51.100.10:80')).toBe(true);
    expect(n.agent.status().announced).toEqual([VIP_WEB, VIP_DNS].sort());
  });
  test('a draining VIP stays announced with its table kept and the data plane told it drains; enabled, no longer draining', async () => {
    const { store, nodes } = await fleetOf(1);
    const n = nodes[0] as Node;
    const web = () => n.dataPlane.current.find((t) => t.vip.address === '198.51.100.10');
    const withState = (state: 'enabled' | 'draining'): Fleet => ({
      ...fleetFile,
      vips: fleetFile.vips.map((v) => (v.address === '198.51.100.10' ? { ...v, state } : v)),
    });
    await store.apply(withState('draining'));
    await until('web table draining', () => web()?.draining === true);
    expect(web()?.backends.map((b) => b.name)).toEqual(['a', 'b', 'c']);
    expect(web()?.slots.every((i) => i >= 0)).toBe(true);
    expect(n.speaker.advertised.some((a) => a.prefix === '198.51.100.10/32')).toBe(true);
    expect(n.agent.status().announced).toEqual([VIP_WEB, VIP_DNS].sort());
    expect(n.events.some((e) => e.kind === 'vip.withdrawn')).toBe(false);
    await store.apply(withState('enabled'));
    await until('web no longer draining', () => web() !== undefined && web()?.draining === undefined);
    expect(web()?.slots.every((i) => i >= 0)).toBe(true);
  });
  test('a VIP removed from the fleet is withdrawn with its own event (reason removed)', async () => {
    const { store, nodes } = await fleetOf(1);
    const n = nodes[0] as Node;
    await store.apply({ ...fleetFile, vips: fleetFile.vips.filter((v) => v.address !== '198.51.100.10') });
    await until('web withdrawn', () => !n.speaker.advertised.some((a) => a.prefix === '198.51.100.10/32'));
    const withdrawn = n.events.find((e) => e.kind === 'vip.withdrawn');
    expect(withdrawn?.data).toMatchObject({ vip: VIP_WEB, prefix: '198.51.100.10/32', reason: 'removed' });
  });
});

describe('agent - minUpMembers', () => {
  test('too few members taking new flows withdraw the VIP (reason belowMinUpMembers), its table stays', async () => {
    const { store, nodes } = await fleetOf(1);
    const n = nodes[0] as Node;
    const withMinUp = (minUpMembers: number): Fleet => ({
      ...fleetFile,
      pools: fleetFile.pools.map((p) => (p.name === 'web' ? { ...p, minUpMembers } : p)),
    });
    const webAnnounced = () => n.speaker.advertised.some((a) => a.prefix === '198.51.100.10/32');
    const below = async () =>
      (await n.agent.metrics.registry.getSingleMetricAsString('l4fleet_table_below_min_up_members'))
        .split('\n')
        .find((l) => l.includes(VIP_WEB));
    await store.apply(withMinUp(2));
    failing.set('*', new Set(['198.18.0.21']));
    await until('a down in the programmed table', () =>
      n.dataPlane.current
        .find((t) => t.vip.address === '198.51.100.10')
        ?.backends.some((m) => m.name === 'a' && m.down === true),
    );
    expect(webAnnounced()).toBe(true); // b and c: 2 take new flows
    // 3 alone, no table changes: the VIP is withdrawn without programming anything.
    const applies = n.ops.filter((o) => o.startsWith('apply:')).length;
    await store.apply(withMinUp(3));
    await until('web withdrawn', () => !webAnnounced());
    expect(n.ops.filter((o) => o.startsWith('apply:')).length).toBe(applies);
    expect(n.dataPlane.current.some((t) => t.vip.address === '198.51.100.10')).toBe(true);
    expect(n.agent.status().announced).toEqual([VIP_DNS]);
    const withdrawn = n.events.find((e) => e.kind === 'vip.withdrawn');
    expect(withdrawn?.data).toMatchObject({ vip: VIP_WEB, prefix: '198.51.100.10/32', reason: 'belowMinUpMembers' });
    expect(await below()).toMatch(/ 1$/);
    // Back to 3 of 3: announced again.
    failing.clear();
    await until('web announced again', webAnnounced);
    expect(await below()).toMatch(/ 0$/);
  });
});

describe('agent - drain and lifecycle', () => {
  test('operator drain: graceful shutdown community, then withdraw; forwarding stays; undrain re-announces', async () => {
    const { store, nodes } = await fleetOf(1);
    const n = nodes[0] as Node;
    const tablesBefore = n.dataPlane.current.length;
    n.ops.length = 0;
    await store.setNodeDrain('n1', true);
    await until('drained', () => n.agent.status().state === 'drained');
    await until('withdrawn', () => n.speaker.advertised.length === 0);
    expect(n.ops.filter((o) => o.startsWith('routes:'))).toEqual([
      'routes:198.51.100.10/32+gshut,198.51.100.11/32+gshut',
      'routes:',
    ]);
    expect(n.dataPlane.current.length).toBe(tablesBefore);
    expect(n.dataPlane.closed).toBe(false);
    await store.setNodeDrain('n1', false);
    await until('re-announced', () => n.speaker.advertised.length === 2);
    expect(n.speaker.advertised.every((a) => !a.communities?.includes('65535:0'))).toBe(true);
    expect(n.agent.status().state).toBe('serving');
  });

  test('a node that starts with its drain flag set announces nothing', async () => {
    const store = new MemoryFleetStore();
    await store.setNodeDrain('n1', true);
    const { nodes } = await fleetOf(1, store);
    const n = nodes[0] as Node;
    expect(n.agent.status().state).toBe('drained');
    expect(n.dataPlane.current.length).toBe(2);
    expect(n.speaker.advertised).toEqual([]);
  });

  test('SIGTERM path: drain, keep forwarding, then stop', async () => {
    const { nodes } = await fleetOf(1);
    const n = nodes[0] as Node;
    n.ops.length = 0;
    await n.agent.shutdown();
    expect(n.ops.filter((o) => o.startsWith('routes:'))).toEqual([
      'routes:198.51.100.10/32+gshut,198.51.100.11/32+gshut',
      'routes:',
    ]);
    expect(n.agent.status().state).toBe('stopped');
    // the agent leaves the kernel state to its owner (the runtime closes without removing it)
    expect(n.dataPlane.current.length).toBe(2);
  });

  test('a drain while the data plane refuses every apply still announces GRACEFUL_SHUTDOWN before the withdraw', async () => {
    const { store, nodes } = await fleetOf(1);
    const n = nodes[0] as Node;
    n.gate.beforeApply = async () => {
      throw new Error('refused');
    };
    n.ops.length = 0;
    const web = fleetFile.pools.find((p) => p.name === 'web');
    await store.apply({
      ...fleetFile,
      pools: fleetFile.pools.map((p) => (p === web ? { ...p, members: p.members.slice(1) } : p)),
    });
    await until('apply failed', () => n.ops.includes('apply-fail'));
    await store.setNodeDrain('n1', true);
    await until('drained', () => n.agent.status().state === 'drained');
    await until('withdrawn', () => n.speaker.advertised.length === 0);
    expect(n.ops.filter((o) => o.startsWith('routes:'))).toEqual([
      'routes:198.51.100.10/32+gshut,198.51.100.11/32+gshut',
      'routes:',
    ]);
  });

  test('the graceful window starts when GRACEFUL_SHUTDOWN is announced, not when a running pass still holds it', async () => {
    const { store, nodes } = await fleetOf(1);
    const n = nodes[0] as Node;
    let release: () => void = () => undefined;
    let held = false;
    n.gate.beforeApply = () =>
      new Promise<void>((resolve) => {
        held = true;
        release = resolve;
      });
    n.ops.length = 0;
    const web = fleetFile.pools.find((p) => p.name === 'web');
    await store.apply({
      ...fleetFile,
      pools: fleetFile.pools.map((p) => (p === web ? { ...p, members: p.members.slice(1) } : p)),
    });
    await until('apply held', () => held);
    const stopping = n.agent.shutdown();
    // Longer than gracefulShutdownMs (150 ms): the window must not run out while the pass holds the announcement.
    await new Promise((r) => setTimeout(r, 400));
    release();
    await stopping;
    expect(n.ops.filter((o) => o.startsWith('routes:'))).toEqual([
      'routes:198.51.100.10/32+gshut,198.51.100.11/32+gshut',
      'routes:',
    ]);
  });

  // A periodic verify holding the reconciler's queue 10 s when SIGTERM came: the draining pass queued behind it, the
  // DRAIN_ANNOUNCE_WAIT_MS fallback (5 s) started the window, the window (150 ms) ran out, and the queued pass
  // withdrew everything: no router saw GRACEFUL_SHUTDOWN. Time is a manual clock; the verify sleeps on it.
  test('a verify holding the queue 10 s when SIGTERM comes: GRACEFUL_SHUTDOWN still goes out before the withdraw', async () => {
    const clock = createManualClock();
    const store = new MemoryFleetStore();
    await store.apply(fleetFile);
    const n = startNode(store, 'n1', 0, undefined, logger, { clock });
    await n.agent.start();
    for (let i = 0; i < 100 && !n.ops.includes('routes:198.51.100.10/32,198.51.100.11/32'); i++)
      await clock.advance(100);
    expect(n.agent.status().state).toBe('serving');
    let verifying = false;
    n.gate.beforeVerify = async () => {
      verifying = true;
      await new Promise<void>((r) => clock.setTimeout(r, 10_000));
    };
    // The first verify is due dataplane.verifyIntervalS (60 s) after the first apply.
    for (let i = 0; i < 200 && !verifying; i++) await clock.advance(1_000);
    expect(verifying).toBe(true);
    n.ops.length = 0;
    let stopped = false;
    void n.agent.shutdown().then(() => {
      stopped = true;
    });
    for (let i = 0; i < 600 && !stopped; i++) await clock.advance(100);
    expect(stopped).toBe(true);
    expect(n.ops.filter((o) => o.startsWith('routes:'))).toEqual([
      'routes:198.51.100.10/32+gshut,198.51.100.11/32+gshut',
      'routes:',
    ]);
  });

  /** A reload's file read: n1 with one peer at `peer`; counts its reads, and waits on `before` first. */
  const reloadOf = (peer: string, before: () => Promise<void> = async () => undefined) => {
    let reads = 0;
    const load = async () => {
      reads += 1;
      await before();
      return parseAgentConfig({
        node: { name: 'n1', interface: 'eth0', address: '198.18.0.11' },
        bgp: { asn: 65001, peers: [{ address: peer, asn: 65000 }], gracefulShutdownMs: 150 },
        etcd: { endpoints: ['http://127.0.0.1:2379'], leaseTtlS: 5 },
        dataplane: { driver: 'dry-run' },
        drain: { forwardAfterWithdrawMs: 50 },
      });
    };
    return { load, loads: () => reads };
  };

  test('a reload once the agent stopped (or closed) is refused, nothing read: its parts are going or gone', async () => {
    const { nodes } = await fleetOf(1);
    const n = nodes[0] as Node;
    const peersBefore = n.speaker.peers.map((p) => p.address);
    const { load, loads } = reloadOf('198.18.0.2');
    await n.agent.shutdown();
    const refused = n.agent.reload(load);
    await expect(refused).rejects.toThrow('reload refused, nothing changed: the agent is exiting');
    await expect(refused).rejects.toMatchObject({ code: 'RELOAD_REFUSED' });
    expect(loads()).toBe(0);
    expect(n.events.at(-1)).toMatchObject({ kind: 'config.reload', data: { result: 'refused' } });
    expect(n.speaker.peers.map((p) => p.address)).toEqual(peersBefore);
  });

  // A reload while the drain ran was applied (peers changed mid RFC 8326 graceful shutdown) unless the CLI caught it.
  test('a reload during the SIGTERM drain (still draining) is refused, nothing read, peers kept', async () => {
    const { nodes } = await fleetOf(1);
    const n = nodes[0] as Node;
    const peersBefore = n.speaker.peers.map((p) => p.address);
    const { load, loads } = reloadOf('198.18.0.3');
    const stopping = n.agent.shutdown();
    expect(n.agent.status().state).toBe('draining');
    await expect(n.agent.reload(load)).rejects.toThrow('reload refused, nothing changed: the agent is exiting');
    await stopping;
    expect(loads()).toBe(0);
    expect(n.speaker.peers.map((p) => p.address)).toEqual(peersBefore);
  });

  // The check was made only when reload() was called: a reload already reading its file (or queued) when shutdown()
  // began went on to change the peers mid-drain.
  test('a reload begun before the SIGTERM drain and still reading its file is refused, peers kept', async () => {
    const { nodes } = await fleetOf(1);
    const n = nodes[0] as Node;
    const peersBefore = n.speaker.peers.map((p) => p.address);
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let reading: () => void = () => undefined;
    const read = new Promise<void>((r) => {
      reading = r;
    });
    const { load, loads } = reloadOf('198.18.0.3', async () => {
      reading();
      await gate;
    });
    const reloading = n.agent.reload(load);
    const queued = n.agent.reload(load);
    await read;
    const stopping = n.agent.shutdown();
    expect(n.agent.status().state).toBe('draining');
    release();
    await expect(reloading).rejects.toThrow('reload refused, nothing changed: the agent is exiting');
    await expect(queued).rejects.toThrow('reload refused, nothing changed: the agent is exiting');
    expect(loads()).toBe(1); // the queued one refused before reading the file
    expect(n.speaker.peers.map((p) => p.address)).toEqual(peersBefore);
    await stopping;
    expect(n.speaker.peers.map((p) => p.address)).toEqual(peersBefore);
    const reloads = n.events.filter((e) => e.kind === 'config.reload').map((e) => e.data);
    expect(reloads).toEqual([
      { result: 'refused', changed: [], error: 'reload refused, nothing changed: the agent is exiting' },
      { result: 'refused', changed: [], error: 'reload refused, nothing changed: the agent is exiting' },
    ]);
  });

  // shutdown() began the drain while a reload's setPeers was in flight: the peers changed mid RFC 8326 graceful
  // shutdown and the reload was reported applied. The drain now begins once the reload in flight has ended.
  test('a reload applying its peers when shutdown() begins: the drain waits for it, then starts', async () => {
    const { nodes } = await fleetOf(1);
    const n = nodes[0] as Node;
    const g = gate();
    let applying: () => void = () => undefined;
    const inFlight = new Promise<void>((r) => {
      applying = r;
    });
    const setPeers = n.speaker.setPeers.bind(n.speaker);
    n.speaker.setPeers = async (peers) => {
      applying();
      await g.opened;
      await setPeers(peers);
      n.ops.push(`peers:${peers.map((p) => p.address).join(',')}`);
    };
    n.ops.length = 0;
    const reloading = n.agent.reload(reloadOf('198.18.0.3').load);
    await Promise.race([inFlight, reloading]);
    const stopping = n.agent.shutdown();
    // Queued behind the one in flight, a later reload is refused; the one in flight keeps the drain from starting.
    const later = n.agent.reload(reloadOf('198.18.0.4').load);
    expect(n.agent.status().state).toBe('serving');
    g.release();
    await expect(reloading).resolves.toMatchObject({ changed: expect.arrayContaining(['bgp.peers']) });
    await expect(later).rejects.toThrow('reload refused, nothing changed: the agent is exiting');
    await stopping;
    expect(n.ops.filter((o) => o.startsWith('routes:') || o.startsWith('peers:'))).toEqual([
      'peers:198.18.0.3',
      'routes:198.51.100.10/32+gshut,198.51.100.11/32+gshut',
      'routes:',
    ]);
    expect(n.agent.status().state).toBe('stopped');
  });

  // shutdown() waits for the reload in flight before the drain, the node still serving meanwhile: a desired-state
  // change then got a full serving pass, a new VIP announced without GRACEFUL_SHUTDOWN, then marked and withdrawn.
  test('a VIP added while shutdown() waits for a reload in flight is never announced', async () => {
    const { store, nodes } = await fleetOf(1);
    const n = nodes[0] as Node;
    const g = gate();
    let applying: () => void = () => undefined;
    const inFlight = new Promise<void>((r) => {
      applying = r;
    });
    const setPeers = n.speaker.setPeers.bind(n.speaker);
    n.speaker.setPeers = async (peers) => {
      applying();
      await g.opened;
      await setPeers(peers);
    };
    const reloading = n.agent.reload(reloadOf('198.18.0.3').load);
    await Promise.race([inFlight, reloading]);
    n.ops.length = 0;
    const stopping = n.agent.shutdown();
    const web = fleetFile.vips.find((v) => v.address === '198.51.100.10') as (typeof fleetFile.vips)[number];
    await store.apply({ ...fleetFile, vips: [...fleetFile.vips, { ...web, address: '198.51.100.12' }] });
    // The pass for the new revision ran (its tables applied) while shutdown() still waits for the reload.
    await until('new revision applied', () => n.ops.some((o) => o.startsWith('apply:')));
    expect(n.agent.status().state).toBe('serving');
    g.release();
    await reloading;
    await stopping;
    expect(n.routes.flat().map((a) => a.prefix)).not.toContain('198.51.100.12/32');
    expect(n.ops.filter((o) => o.startsWith('routes:'))).toEqual([
      'routes:198.51.100.10/32+gshut,198.51.100.11/32+gshut',
      'routes:',
    ]);
  });

  // Past RELOAD_SETTLE_MS (5 s) shutdown() stops waiting for the reload applying and drains; stopApplying() stops
  // that reload before its next step, refused naming what it applied and what not: without it the reload went on
  // (bfdd given the new peer mid RFC 8326 graceful shutdown) and was reported applied. The test above releases its
  // reload in time, so only this one reaches the timeout. Time is a manual clock: the 5 s pass in advance().
  test('a reload whose setPeers has not settled 5 s after shutdown() began: the drain starts, the reload stops before its next step', async () => {
    const clock = createManualClock();
    const store = new MemoryFleetStore();
    await store.apply(fleetFile);
    const configOf = (peer: string) =>
      parseAgentConfig({
        node: { name: 'n1', interface: 'eth0', address: '198.18.0.11' },
        bgp: { asn: 65001, peers: [{ address: peer, asn: 65000 }], gracefulShutdownMs: 150 },
        bfd: { enabled: true },
        etcd: { endpoints: ['http://127.0.0.1:2379'], leaseTtlS: 5 },
        dataplane: { driver: 'dry-run' },
        drain: { forwardAfterWithdrawMs: 50 },
      });
    // A bfdd whose sessions come up when configured; each configure is an op (`bfd:PEER`).
    const sink = { ops: [] as string[] };
    const sessions = new Map<string, string>();
    const bfdd: Bfdd = {
      sessions: async () => [...sessions].map(([peer, local]) => ({ peer, local, status: 'up', sinceS: 0 })),
      configure: async (p) => {
        sink.ops.push(`bfd:${p.address}`);
        sessions.set(p.address, p.localAddress);
      },
      remove: async (p) => {
        sink.ops.push(`bfd:-${p.address}`);
        sessions.delete(p.address);
      },
    };
    const lines: { event?: string }[] = [];
    const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
    const n = startNode(store, 'n1', 0, undefined, log, { clock, bfdd, config: configOf('198.18.0.1') });
    sink.ops = n.ops;
    await n.agent.start();
    for (let i = 0; i < 100 && !n.ops.includes('routes:198.51.100.10/32,198.51.100.11/32'); i++)
      await clock.advance(100);
    expect(n.agent.status().state).toBe('serving');
    const g = gate();
    let applying: () => void = () => undefined;
    const inFlight = new Promise<void>((r) => {
      applying = r;
    });
    const setPeers = n.speaker.setPeers.bind(n.speaker);
    n.speaker.setPeers = async (peers) => {
      n.ops.push(`peers:${peers.map((p) => p.address).join(',')}`);
      applying();
      await g.opened;
      await setPeers(peers);
    };
    n.ops.length = 0;
    const reloading = n.agent.reload(async () => configOf('198.18.0.3'));
    await Promise.race([inFlight, reloading]);
    const stopping = n.agent.shutdown();
    let stopped = false;
    void stopping.then(() => {
      stopped = true;
    });
    await clock.advance(4_999);
    expect(n.agent.status().state).toBe('serving');
    await clock.advance(1);
    expect(lines.some((l) => l.event === 'reloadStillApplying')).toBe(true);
    expect(n.agent.status().state).toBe('draining');
    const gshut = 'routes:198.51.100.10/32+gshut,198.51.100.11/32+gshut';
    for (let i = 0; i < 100 && !n.ops.includes(gshut); i++) await clock.advance(10);
    expect(n.ops).toContain(gshut);
    // gobgpd answers at last: the reload stops before its next step (bfd.peers).
    g.release();
    await expect(reloading).rejects.toThrow(
      'reload refused: the agent began exiting while it applied; applied: bgp.peers; not applied: bfd.peers',
    );
    for (let i = 0; i < 200 && !stopped; i++) await clock.advance(100);
    expect(stopped).toBe(true);
    expect(n.agent.status().state).toBe('stopped');
    const afterGshut = n.ops.slice(n.ops.indexOf(gshut));
    expect(afterGshut.filter((o) => o.startsWith('peers:') || o.startsWith('bfd:'))).toEqual([]);
    expect(n.ops.filter((o) => o.startsWith('peers:') || o.startsWith('bfd:'))).toEqual(['peers:198.18.0.3']);
  });

  test('SIGTERM path: stopping (events, status) once the routes are withdrawn, before the forwarding wait', async () => {
    const store = new MemoryFleetStore();
    await store.apply(fleetFile);
    const lines: { event?: string; state?: string }[] = [];
    const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
    const n = startNode(store, 'n1', 0, undefined, log);
    await n.agent.start();
    await n.agent.whenReady(5_000);
    await n.agent.shutdown();
    const order = lines
      .filter((l) => l.event === 'nodeState' || l.event === 'forwardingAfterWithdraw')
      .map((l) => (l.event === 'nodeState' ? l.state : l.event));
    expect(order).toEqual(['serving', 'draining', 'drained', 'stopping', 'forwardingAfterWithdraw', 'stopped']);
    const states = n.events.filter((e) => e.kind === 'node.state').map((e) => (e.data as { state: string }).state);
    expect(states).toEqual(['serving', 'draining', 'drained', 'stopping', 'stopped']);
  });

  test('gobgpd away: a withdraw is pending, not done; SIGTERM names the routes gobgpd may still announce', async () => {
    const store = new MemoryFleetStore();
    await store.apply(fleetFile);
    const lines: { event?: string; prefixes?: string[]; level?: number }[] = [];
    const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
    const n = startNode(store, 'n1', 0, undefined, log);
    await n.agent.start();
    await n.agent.whenReady(5_000);
    await until('announced', () => n.speaker.advertised.length === 2);
    n.speaker.failWith(new BgpError('UNAVAILABLE', 'gobgpd: connection refused', { retryable: true }));
    // GRACEFUL_SHUTDOWN never goes out: the drain ends by the DRAIN_ANNOUNCE_WAIT_MS fallback (5 s).
    await n.agent.shutdown();
    expect(lines.some((l) => l.event === 'drainAnnounceTimeout')).toBe(true);
    const warned = lines.find((l) => l.event === 'routesMayRemain');
    expect(warned?.prefixes).toEqual(['198.51.100.10/32', '198.51.100.11/32']);
    expect(warned?.level).toBe(40);
  });

  test('gobgpd back: the deferred route set is sent again (no longer pending) without a new input', async () => {
    const { nodes } = await fleetOf(1);
    const n = nodes[0] as Node;
    n.ops.length = 0;
    await n.agent.drain();
    await until('GRACEFUL_SHUTDOWN sent', () => n.ops.some((o) => o.endsWith('+gshut')));
    // Away before the window (150 ms) ends: the withdraw is deferred.
    n.speaker.failWith(new BgpError('UNAVAILABLE', 'gobgpd: connection refused', { retryable: true }));
    await until('drained', () => n.agent.status().state === 'drained');
    await n.agent.reconcile(); // the withdraw pass ran, deferred
    expect(n.speaker.advertised.length).toBe(2);
    n.speaker.failWith(undefined);
    await until('withdrawn in gobgpd', () => n.speaker.advertised.length === 0);
  });

  // The window started when the draining set was handed to a speaker that deferred it (gobgpd away): it ran out, the
  // node drained, and gobgpd got the plain withdraw when back; no router ever saw GRACEFUL_SHUTDOWN.
  test('gobgpd away when the drain begins: the window waits for GRACEFUL_SHUTDOWN to go out, then withdraws', async () => {
    const { nodes } = await fleetOf(1);
    const n = nodes[0] as Node;
    n.ops.length = 0;
    n.speaker.failWith(new BgpError('UNAVAILABLE', 'gobgpd: connection refused', { retryable: true }));
    await n.agent.drain();
    // Longer than gracefulShutdownMs (150 ms), well short of DRAIN_ANNOUNCE_WAIT_MS: the window has not started.
    await new Promise((r) => setTimeout(r, 400));
    expect(n.agent.status().state).toBe('draining');
    n.speaker.failWith(undefined);
    await until('drained', () => n.agent.status().state === 'drained');
    await until('withdrawn in gobgpd', () => n.speaker.advertised.length === 0);
    expect(n.ops.filter((o) => o.startsWith('routes:'))).toEqual([
      'routes:198.51.100.10/32+gshut,198.51.100.11/32+gshut',
      'routes:',
    ]);
  });

  // A restart knows nothing of what gobgpd still holds from the run before (the agent killed, the speaker kept them):
  // a pass that could not go far enough to set routes left them announced after SIGTERM said stopped.
  describe('restarted without ever setting routes, gobgpd still announcing the previous run', () => {
    /** n1 serving with both VIPs, closed (gobgpd keeps the routes), and a second agent on the same speaker. */
    async function restarted(store: MemoryFleetStore, before?: () => Promise<void> | void, log = logger) {
      const { nodes } = await fleetOf(1, store);
      const n = nodes[0] as Node;
      await until('announced', () => n.speaker.advertised.length === 2);
      await n.agent.close();
      expect(n.speaker.advertised).toHaveLength(2);
      await before?.();
      return startNode(store, 'n1', 0, { speaker: n.speaker, dataPlane: n.dataPlane }, log);
    }

    test('desired state etcd refuses (corrupt), no state file: SIGTERM still withdraws them', async () => {
      const store = new MemoryFleetStore();
      const again = await restarted(store, () => store.corruptDesired());
      await again.agent.start();
      await again.agent.shutdown();
      expect(again.agent.status().state).toBe('stopped');
      expect(again.speaker.advertised).toEqual([]);
    });

    test('a data plane refusing every apply: SIGTERM still withdraws them, without waiting out DRAIN_ANNOUNCE_WAIT_MS', async () => {
      const store = new MemoryFleetStore();
      const lines: { event?: string }[] = [];
      const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
      const again = await restarted(store, undefined, log);
      again.gate.beforeApply = async () => {
        throw new Error('refused');
      };
      await again.agent.start();
      await until('apply failed', () => again.ops.includes('apply-fail'));
      expect(again.speaker.advertised).toHaveLength(2);
      await again.agent.shutdown();
      expect(again.agent.status().state).toBe('stopped');
      expect(again.speaker.advertised).toEqual([]);
      expect(again.ops.filter((o) => o.startsWith('routes:'))).toEqual(['routes:']);
      // Withdrawn by the draining pass itself: the drain did not end by its fallback.
      expect(lines.filter((l) => l.event === 'drainAnnounceTimeout')).toEqual([]);
    });

    test('its drain flag set and a data plane refusing every apply: drained withdraws them', async () => {
      const store = new MemoryFleetStore();
      const again = await restarted(store, () => store.setNodeDrain('n1', true));
      again.gate.beforeApply = async () => {
        throw new Error('refused');
      };
      await again.agent.start();
      await until('drained', () => again.agent.status().state === 'drained');
      await until('withdrawn', () => again.speaker.advertised.length === 0);
      expect(again.ops.filter((o) => o.startsWith('routes:'))).toEqual(['routes:']);
    });
  });

  test('a restart reconciles without withdrawing what stays announced', async () => {
    const store = new MemoryFleetStore();
    const { nodes } = await fleetOf(1, store);
    const n = nodes[0] as Node;
    await n.agent.close();
    const again = startNode(store, 'n1', 0, { speaker: n.speaker, dataPlane: n.dataPlane });
    const historyBefore = n.speaker.history.length;
    await again.agent.start();
    await again.agent.whenReady(5_000);
    await until('routes set', () => again.ops.some((o) => o.startsWith('routes:')));
    const after = n.speaker.history.slice(historyBefore);
    expect(after.every((set) => set.length === 2)).toBe(true);
    expect(again.ops.filter((o) => o.startsWith('routes:'))).toEqual(['routes:198.51.100.10/32,198.51.100.11/32']);
  });
});

describe('agent - faults', () => {
  test('invalid state in etcd is rejected with an event and a metric; the last good state keeps serving', async () => {
    const { store, nodes } = await fleetOf(1);
    const n = nodes[0] as Node;
    const tables = n.agent.status().tables;
    store.corruptDesired();
    await until('rejected event', () => n.events.some((e) => e.kind === 'state.rejected'));
    const metric = await n.agent.metrics.registry.getSingleMetricAsString('l4fleet_state_rejected_total');
    expect(metric).toMatch(/l4fleet_state_rejected_total\{[^}]*\} 1/);
    expect(n.agent.status().tables).toEqual(tables);
    expect(n.speaker.advertised.length).toBe(2);
  });

  test('etcd unreachable: fail-static (status, metric), nothing withdrawn, and back without a flap', async () => {
    const store = new MemoryFleetStore();
    let down = false;
    const realGetLeader = store.getLeader.bind(store);
    store.getLeader = async () => {
      if (down) throw new StoreError('UNAVAILABLE', 'etcd get: connect ECONNREFUSED');
      return realGetLeader();
    };
    const { nodes } = await fleetOf(1, store);
    const n = nodes[0] as Node;
    n.ops.length = 0;
    down = true;
    await until('fail-static', () => n.agent.status().failStatic, 5_000);
    expect(await n.agent.metrics.registry.getSingleMetricAsString('l4fleet_fail_static')).toMatch(/ 1$/m);
    down = false;
    await until('back', () => !n.agent.status().failStatic, 5_000);
    expect(n.ops.filter((o) => o.startsWith('routes:') && o !== 'routes:198.51.100.10/32,198.51.100.11/32')).toEqual(
      [],
    );
    expect(n.speaker.advertised.length).toBe(2);
    expect(
      n.events.filter((e) => e.kind === 'node.state').map((e) => (e.data as { failStatic: boolean }).failStatic),
    ).toEqual(expect.arrayContaining([true, false]));
  });
});

/** A promise the test releases (`opened` resolves on release()). */
function gate() {
  let release: () => void = () => undefined;
  const opened = new Promise<void>((r) => {
    release = r;
  });
  return { opened, release };
}

describe('agent - close while connecting', () => {
  test('closed while its registration is in flight: the node does not stay registered', async () => {
    const store = new MemoryFleetStore();
    await store.apply(fleetFile);
    const g = gate();
    const realRegister = store.registerNode.bind(store);
    store.registerNode = async (...args) => {
      await g.opened;
      return realRegister(...args);
    };
    const n = startNode(store, 'n1', 0);
    const started = n.agent.start();
    await n.agent.close();
    g.release();
    await started;
    expect((await store.listNodes()).filter((v) => v.record !== undefined).map((v) => v.name)).toEqual([]);
  });

  test('closed while its watches start: none stays open', async () => {
    const store = new MemoryFleetStore();
    await store.apply(fleetFile);
    const g = gate();
    let open = 0;
    const counted =
      <A extends unknown[]>(start: (...a: A) => Promise<{ close(): Promise<void> }>, wait = false) =>
      async (...a: A) => {
        if (wait) await g.opened;
        const w = await start(...a);
        open += 1;
        return {
          close: async () => {
            open -= 1;
            await w.close();
          },
        };
      };
    store.watchDesired = counted(store.watchDesired.bind(store));
    store.watchDecided = counted(store.watchDecided.bind(store));
    store.watchNodes = counted(store.watchNodes.bind(store));
    store.watchTableHistory = counted(store.watchTableHistory.bind(store), true);
    const n = startNode(store, 'n1', 0);
    const started = n.agent.start();
    await until('three watches', () => open === 3);
    await n.agent.close();
    g.release();
    await started;
    expect(open).toBe(0);
  });
});
