/**
 * A serving node whose node.name another address took (its lease lost in a partition longer than the TTL and the
 * name registered by another host meanwhile): runAgent drains it (routes withdrawn) and asks its caller to exit.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createFakeSpeaker } from '@l4fleet/bgp';
import type { Fleet } from '@l4fleet/config';
import { createRecordingDataPlane } from '@l4fleet/dataplane';
import { type FleetStore, MemoryFleetStore, type NodeRegistrationOptions, StoreError } from '@l4fleet/store';
import { until as waitUntil } from '@l4fleet/test-support/eventually';
import { twoPoolFleet } from '@l4fleet/test-support/fleets';
import pino from 'pino';
import { afterEach, describe, expect, test } from 'vitest';
import { type Agent, createAgent } from './agent.js';
import { parseAgentConfig } from './config/parse.js';
import { createLastStateFile } from './persist/last-state.js';
import { type RunningAgent, runAgent } from './runtime.js';

const logger = pino({ level: process.env.L4FLEET_TEST_LOG ?? 'silent' });
const fleetFile: Fleet = twoPoolFleet({ type: 'tcp', intervalMs: 100, timeoutMs: 50, rise: 1, fall: 2 });

/** Polls until `fn` is truthy (5 s, every 10 ms). */
const until = (what: string, fn: () => boolean | Promise<boolean>) => waitUntil(what, fn, 5_000, 10);

let running: RunningAgent | undefined;
afterEach(async () => {
  await running?.close();
  running = undefined;
});

describe('agent - node.name taken by another address while serving', () => {
  // The node served, announced every VIP and obeyed the drain flag on nodes/<name> of the host that now holds the
  // name, its re-registration refused with CONFLICT forever.
  test('agent - lease lost, then the name taken: routes withdrawn, exit requested', async () => {
    const fleet = new MemoryFleetStore();
    await fleet.apply(fleetFile);
    const store = fleet.client();
    let options: NodeRegistrationOptions | undefined;
    const capturing = Object.create(store) as MemoryFleetStore;
    capturing.registerNode = (info, o) => {
      options = o;
      return store.registerNode(info, o);
    };
    const speaker = createFakeSpeaker();
    const taken: StoreError[] = [];
    const config = parseAgentConfig({
      node: { name: 'n1', interface: 'eth0', address: '198.18.0.11' },
      bgp: { asn: 65001, peers: [{ address: '198.18.0.1', asn: 65000 }], gracefulShutdownMs: 50 },
      etcd: { endpoints: ['http://127.0.0.1:2379'], leaseTtlS: 5 },
      dataplane: { driver: 'dry-run' },
      drain: { forwardAfterWithdrawMs: 20 },
      metrics: { listen: '127.0.0.1:0' },
      state: { enabled: false },
    });
    running = await runAgent(config, {
      logger,
      store: capturing,
      speaker,
      dataPlane: createRecordingDataPlane({ requireSamePort: false }),
      onNameTaken: (err) => void taken.push(err),
    });
    await running.agent.whenReady(5_000);
    await until('announced', () => speaker.advertised.length > 0);
    options?.onLeaseLost?.(new StoreError('LEASE_LOST', 'node n1: lease 1 lost: lease expired'));
    const err = new StoreError(
      'CONFLICT',
      'register node n1: nodes/n1: node.name "n1" is already registered by 198.18.0.12 (lease 9); node names must be unique',
      { key: 'nodes/n1' },
    );
    options?.onNameTaken?.(err);
    expect(taken).toEqual([err]);
    await until(
      'withdrawn and stopped',
      () => speaker.advertised.length === 0 && running?.agent.status().state === 'stopped',
    );
    expect(running.agent.status().announced).toEqual([]);
    // The caller's shutdown() finishes what the drain began.
    await running.shutdown();
  });
});

/** The in-memory store behind a switch: while `down`, every call fails as an unreachable etcd would. */
function switchable(inner: MemoryFleetStore): { store: FleetStore; setDown(d: boolean): void } {
  let down = false;
  const store = new Proxy(inner, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown;
      if (typeof v !== 'function' || prop === 'close') return typeof v === 'function' ? v.bind(target) : v;
      return (...args: unknown[]) =>
        down
          ? Promise.reject(new StoreError('UNAVAILABLE', `etcd ${String(prop)}: connect ECONNREFUSED`))
          : (v as (...a: unknown[]) => unknown).apply(target, args);
    },
  });
  return { store, setDown: (d) => void (down = d) };
}

describe('agent - node.name taken by another address while serving the state file', () => {
  const agents: Agent[] = [];
  let dir = '';
  afterEach(async () => {
    for (const a of agents.splice(0)) await a.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  // Started from its state file while etcd was down; etcd back with the name held by another address: it looped in
  // register() (ready, announcing, etcdConnected), and its aggregator and peer health ran as that node.
  test('agent - etcd back with the name held: onNameTaken, no aggregator; shutdown withdraws the routes', async () => {
    dir = await mkdtemp(join(tmpdir(), 'l4fleet-name-taken-'));
    const inner = new MemoryFleetStore();
    const { revision } = await inner.apply(fleetFile);
    const net = switchable(inner);
    const speaker = createFakeSpeaker();
    const taken: StoreError[] = [];
    const start = (onNameTaken?: (err: StoreError) => void) => {
      const agent = createAgent({
        config: parseAgentConfig({
          node: { name: 'n1', interface: 'eth0', address: '198.18.0.11' },
          bgp: { asn: 65001, peers: [{ address: '198.18.0.1', asn: 65000 }], gracefulShutdownMs: 50 },
          etcd: { endpoints: ['http://127.0.0.1:2379'], dialTimeoutMs: 200 },
          dataplane: { driver: 'dry-run' },
          drain: { forwardAfterWithdrawMs: 20 },
        }),
        store: net.store,
        speaker,
        dataPlane: createRecordingDataPlane({ requireSamePort: false }),
        logger,
        probe: async () => ({ ok: true, latencyMs: 1 }),
        lastState: createLastStateFile({
          dir,
          identity: { node: 'n1', fleet: 'default', etcdPrefix: '/l4fleet' },
          maxBytes: 1 << 24,
          maxAgeS: 3_600,
        }),
        ...(onNameTaken ? { onNameTaken } : {}),
      });
      agents.push(agent);
      return agent;
    };
    const first = start();
    await first.start();
    await first.whenReady(5_000);
    const file = createLastStateFile({
      dir,
      identity: { node: 'n1', fleet: 'default', etcdPrefix: '/l4fleet' },
      maxBytes: 1 << 24,
      maxAgeS: 3_600,
    });
    await until('state file saved', async () => (await file.load().catch(() => undefined))?.revision === revision);
    await first.close();
    // Another host takes the name while this one is away.
    await inner.client().registerNode({ name: 'n1', address: '198.18.0.12' });
    net.setDown(true);
    const again = start((err) => void taken.push(err));
    await again.start();
    await again.whenReady(5_000);
    expect(again.status().inputSource).toBe('lastState');
    await until('announced', () => speaker.advertised.length > 0);
    net.setDown(false);
    await until('name taken', () => taken.length > 0);
    expect(taken[0]).toMatchObject({ code: 'CONFLICT' });
    expect(taken[0]?.message).toMatch(/already registered by 198\.18\.0\.12/);
    // Bounded: long enough for an aggregator started meanwhile to campaign and win alone.
    await new Promise((r) => setTimeout(r, 300));
    expect(again.status().aggregator).toBe(false);
    expect(await inner.getLeader()).toBeUndefined();
    await again.shutdown();
    expect(speaker.advertised).toEqual([]);
  });
});
