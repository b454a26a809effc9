/**
 * shutdown() waits for a reload in flight before the drain, the node serving meanwhile (agent.test.ts: a VIP added
 * then is never announced). What the fleet takes away during that wait goes at once, and is not announced again.
 */
import { type Advertisement, createFakeSpeaker } from '@l4fleet/bgp';
import type { Fleet } from '@l4fleet/config';
import { createRecordingDataPlane } from '@l4fleet/dataplane';
import { MemoryFleetStore } from '@l4fleet/store';
import { until as waitUntil } from '@l4fleet/test-support/eventually';
import { twoPoolFleet } from '@l4fleet/test-support/fleets';
import pino from 'pino';
import { afterEach, describe, expect, test } from 'vitest';
import { type Agent, createAgent } from './agent.js';
import { parseAgentConfig } from './config/parse.js';

const logger = pino({ level: process.env.L4FLEET_TEST_LOG ?? 'silent' });
const fleetFile: Fleet = twoPoolFleet({ type: 'tcp', intervalMs: 100, timeoutMs: 50, rise: 1, fall: 2 });

const configWithPeer = (peer: string) =>
  parseAgentConfig({
    node: { name: 'n1', interface: 'eth0', address: '198.18.0.11' },
    bgp: { asn: 65001, peers: [{ address: peer, asn: 65000 }], gracefulShutdownMs: 150 },
    etcd: { endpoints: ['http://127.0.0.1:2379'], leaseTtlS: 5 },
    dataplane: { driver: 'dry-run' },
    drain: { forwardAfterWithdrawMs: 50 },
  });

const running: Agent[] = [];
afterEach(async () => {
  for (const a of running.splice(0)) await a.close();
});

/** A serving node whose route sets and data-plane applies are recorded in order (`routes:PREFIX[+gshut],...`). */
async function servingNode(store: MemoryFleetStore) {
  const speaker = createFakeSpeaker();
  const dataPlane = createRecordingDataPlane({ requireSamePort: false });
  const ops: string[] = [];
  /** Each setPeers waits for this first while set (a reload in flight). */
  const hold: { setPeers?: () => Promise<void> } = {};
  const agent = createAgent({
    config: configWithPeer('198.18.0.1'),
    store,
    speaker: {
      ...speaker,
      ensureGlobal: (g) => speaker.ensureGlobal(g),
      setPeers: async (p) => {
        await hold.setPeers?.();
        await speaker.setPeers(p);
      },
      setAdvertisements: async (advs: readonly Advertisement[]) => {
        await speaker.setAdvertisements(advs);
        const shown = advs.map((a) => a.prefix + (a.communities?.includes('65535:0') ? '+gshut' : ''));
        ops.push(`routes:${shown.sort().join(',')}`);
      },
      peerEvents: () => speaker.peerEvents(),
      peerStates: () => speaker.peerStates(),
      close: () => speaker.close(),
    },
    dataPlane: {
      ...dataPlane,
      apply: async (d) => {
        const r = await dataPlane.apply(d);
        ops.push(`apply:${d.length}`);
        return r;
      },
      verify: () => dataPlane.verify(),
      counters: () => dataPlane.counters(),
      close: () => dataPlane.close(),
    },
    logger,
    probe: async () => ({ ok: true, latencyMs: 1 }),
  });
  running.push(agent);
  await agent.start();
  await agent.whenReady(5_000);
  await waitUntil('both VIPs announced', () => speaker.advertised.length === 2, 5_000, 10);
  return { agent, ops, hold };
}

describe('agent - shutdown() waiting for a reload in flight', () => {
  // The serving pass during the wait kept every route announced before (announceNew false), usable or not: a VIP
  // removed meanwhile stayed announced, then went out again in the GRACEFUL_SHUTDOWN set, pointing at no table.
  test('a VIP removed while shutdown() waits is withdrawn at once and not announced again', async () => {
    const store = new MemoryFleetStore();
    await store.apply(fleetFile);
    const n = await servingNode(store);
    let release: () => void = () => undefined;
    const released = new Promise<void>((r) => {
      release = r;
    });
    let applying: () => void = () => undefined;
    const inFlight = new Promise<void>((r) => {
      applying = r;
    });
    n.hold.setPeers = async () => {
      applying();
      await released;
    };
    const reloading = n.agent.reload(async () => configWithPeer('198.18.0.3'));
    await Promise.race([inFlight, reloading]);
    n.ops.length = 0;
    const stopping = n.agent.shutdown();
    await store.apply({ ...fleetFile, vips: fleetFile.vips.filter((v) => v.address !== '198.51.100.11') });
    // The pass for the new revision ran (its tables applied) while shutdown() still waits for the reload.
    await waitUntil('new revision applied', () => n.ops.some((o) => o.startsWith('apply:')), 5_000, 10);
    expect(n.agent.status().state).toBe('serving');
    release();
    await reloading;
    await stopping;
    expect(n.ops.filter((o) => o.startsWith('routes:'))).toEqual([
      'routes:198.51.100.10/32',
      'routes:198.51.100.10/32+gshut',
      'routes:',
    ]);
  });
});
