/**
 * agent.yaml dataplane.verifyIntervalS reaches the reconciler: the agent reads its data plane back (DataPlane.verify)
 * at that interval, or never with 0. The whole agent over the memory store, the fake speaker, the recording data
 * plane and a manual clock.
 */
import { createFakeSpeaker } from '@l4fleet/bgp';
import { createRecordingDataPlane } from '@l4fleet/dataplane';
import { MemoryFleetStore } from '@l4fleet/store';
import { twoPoolFleet } from '@l4fleet/test-support/fleets';
import pino from 'pino';
import { afterEach, describe, expect, test } from 'vitest';
import { type Agent, createAgent } from './agent.js';
import { createManualClock } from './clock.js';
import { parseAgentConfig } from './config/parse.js';

const running: Agent[] = [];
afterEach(async () => {
  for (const a of running.splice(0)) await a.close();
});

async function servingNode(dataplane: Record<string, unknown>) {
  const clock = createManualClock(Date.parse('2026-01-01T00:00:00Z'));
  const store = new MemoryFleetStore();
  await store.apply(twoPoolFleet({ type: 'none' }));
  const dataPlane = createRecordingDataPlane({ requireSamePort: false });
  const agent = createAgent({
    config: parseAgentConfig({
      node: { name: 'n1', interface: 'eth0', address: '198.18.0.11' },
      bgp: { asn: 65001, peers: [{ address: '198.18.0.1', asn: 65000 }] },
      etcd: { endpoints: ['http://127.0.0.1:2379'] },
      dataplane: { driver: 'dry-run', ...dataplane },
    }),
    store,
    speaker: createFakeSpeaker(),
    dataPlane,
    logger: pino({ level: 'silent' }),
    clock,
  });
  running.push(agent);
  await agent.start();
  expect(agent.status()).toMatchObject({ state: 'serving', ready: true });
  return { clock, dataPlane, agent };
}

describe('agent - dataplane.verifyIntervalS', () => {
  test.each([
    [{}, 60_000, 5],
    [{ verifyIntervalS: 120 }, 120_000, 5],
    [{ verifyIntervalS: 0 }, 60_000, 0],
  ])('%j: verified every interval from the first apply (%i ms, %i times in five)', async (dataplane, stepMs, n) => {
    const node = await servingNode(dataplane);
    const before = node.dataPlane.verified;
    for (let i = 0; i < 5; i++) await node.clock.advance(stepMs);
    expect(node.dataPlane.verified - before).toBe(n);
  });
});
