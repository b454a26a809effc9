/**
 * A serving node whose node.name another address took (its lease lost in a partition longer than the TTL and the
 * name registered by another host meanwhile): runAgent drains it (routes withdrawn) and asks its caller to exit.
 */
import { createFakeSpeaker } from '@l4fleet/bgp';
import type { Fleet } from '@l4fleet/config';
import { createRecordingDataPlane } from '@l4fleet/dataplane';
import { MemoryFleetStore, type NodeRegistrationOptions, StoreError } from '@l4fleet/store';
import { until as waitUntil } from '@l4fleet/test-support/eventually';
import { twoPoolFleet } from '@l4fleet/test-support/fleets';
import pino from 'pino';
import { afterEach, describe, expect, test } from 'vitest';
import { parseAgentConfig } from './config/parse.js';
import { type RunningAgent, runAgent } from './runtime.js';

const logger = pino({ level: process.env.L4FLEET_TEST_LOG ?? 'silent' });
const fleetFile: Fleet = twoPoolFleet({ type: 'tcp', intervalMs: 100, timeoutMs: 50, rise: 1, fall: 2 });

/** Polls until `fn` is truthy (5 s, every 10 ms). */
const until = (what: string, fn: () => boolean) => waitUntil(what, fn, 5_000, 10);

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
