/**
 * announceNew false (shutdown() began, its drain waiting for a reload applying): a serving pass announces only
 * prefixes announced already. "Already" is what the reconciler set; with no route set yet (routes unknown), none.
 */
import { createFakeSpeaker } from '@l4fleet/bgp';
import { parseFleet } from '@l4fleet/config';
import { createRecordingDataPlane, DataPlaneError } from '@l4fleet/dataplane';
import pino from 'pino';
import { describe, expect, test } from 'vitest';
import { createManualClock } from '../clock.js';
import { createEventPublisher } from '../events/publisher.js';
import { createAgentMetrics } from '../observe/metrics.js';
import { createReconciler, type ServeInputs } from './reconciler.js';

const fleet = parseFleet({
  hashSeed: 7,
  pools: [{ name: 'web', members: [{ name: 'a', address: '198.18.0.21', port: 80 }] }],
  vips: [
    { address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web', tableSize: 251 },
    { address: '198.51.100.20', port: 80, protocol: 'tcp', pool: 'web', tableSize: 251 },
  ],
});

describe('reconciler - announceNew false', () => {
  // Read as "everything when no route was set yet", a node whose first apply was refused announced every VIP in the
  // pass after shutdown() began (without GRACEFUL_SHUTDOWN), then marked and withdrew them.
  test('the first apply refused, then a pass with announceNew false: no prefix announced', async () => {
    const logger = pino({ level: 'silent' });
    const dataPlane = createRecordingDataPlane();
    const speaker = createFakeSpeaker();
    let inputs: ServeInputs = { fleet, revision: 1, decided: new Map(), ramps: new Map(), routeMode: 'serving' };
    const reconciler = createReconciler({
      inputs: () => inputs,
      dataPlane,
      speaker,
      routeContext: { nextHop4: '198.18.0.11', communities: [] },
      events: createEventPublisher({ prefix: 'l4fleet', fleet: 'f', node: 'node1', maxPending: 100, logger }),
      metrics: createAgentMetrics({ node: 'node1', fleet: 'f', defaultMetrics: false }),
      logger,
      clock: createManualClock(1_000),
    });
    try {
      dataPlane.failNext(new DataPlaneError('NFT_FAILED', 'nft: refused'));
      await reconciler.request();
      expect(dataPlane.applied).toEqual([]);
      expect(speaker.history).toEqual([]);
      inputs = { ...inputs, revision: 2, announceNew: false };
      await reconciler.request();
      expect(dataPlane.applied).toHaveLength(1);
      expect(speaker.history.flat()).toEqual([]);
      expect(reconciler.served.announcedVips).toEqual([]);
      // Control: the same pass with announceNew left on announces both.
      inputs = { ...inputs, revision: 3, announceNew: true };
      await reconciler.request();
      expect(speaker.advertised.map((a) => a.prefix)).toEqual(['198.51.100.10/32', '198.51.100.20/32']);
    } finally {
      reconciler.close();
    }
  });
});
