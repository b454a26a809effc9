/**
 * The agent's fail-static probe against a real three-member etcd (Debian's etcd 3.4): losing one member is not
 * losing etcd. A frozen follower (SIGSTOP: TCP connects, nothing answers) is the hard case, since a probe that draws
 * it first spends a whole dial timeout there before the store asks another member (etcdProbeTimeoutMs).
 */
import { DEFAULT_DIAL_TIMEOUT_MS, EtcdFleetStore } from '@l4fleet/store';
import { type EtcdClusterHandle, etcdLeader, startEtcdCluster } from '@l4fleet/test-support/etcd';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { systemClock } from '../clock.js';
import { createAgentMetrics } from '../observe/metrics.js';
import { createFailStatic, ETCD_PROBE_INTERVAL_MS, etcdProbeTimeoutMs } from './fail-static.js';

const logger = pino({ level: process.env.L4FLEET_TEST_LOG ?? 'silent' });
/** How long each follower stays frozen while the node probes: several probes, each drawing it first 1 time in 3. */
const FROZEN_MS = 8_000;

describe('fail-static probe - a real three-member etcd, one member lost', () => {
  let cluster: EtcdClusterHandle;
  let store: EtcdFleetStore | undefined;

  beforeAll(async () => {
    cluster = await startEtcdCluster({ members: 3 });
  }, 60_000);
  afterEach(async () => {
    for (const m of cluster.members) m.thaw();
    await store?.close();
    store = undefined;
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  /** Probes through every endpoint for `ms`, as the agent does; returns the fail-static changes and the probe count. */
  async function probeFor(ms: number): Promise<{ changes: string[]; probes: number }> {
    store = new EtcdFleetStore({ endpoints: cluster.endpoints, prefix: '/fs-probe', logger });
    const s = store;
    let probes = 0;
    const changes: string[] = [];
    const fs = createFailStatic({
      store: {
        getLeader: () => {
          probes += 1;
          return s.getLeader();
        },
      },
      clock: systemClock,
      probeTimeoutMs: etcdProbeTimeoutMs(DEFAULT_DIAL_TIMEOUT_MS, cluster.endpoints.length),
      metrics: createAgentMetrics({ node: 'n1', fleet: 'default', defaultMetrics: false }),
      logger,
      revision: () => 1,
      onFailStatic: (f, why) => changes.push(`${f ? 'entered' : 'left'}: ${why}`),
    });
    fs.startProbing(0);
    await new Promise((r) => setTimeout(r, ms));
    fs.close();
    return { changes, probes };
  }

  test('each follower frozen in turn, then killed: the probe always answers, the node never goes fail-static', async () => {
    const leader = await etcdLeader(cluster);
    const followers = cluster.members.filter((m) => m !== leader);
    expect(followers).toHaveLength(2);
    for (const m of followers) {
      m.freeze();
      const frozen = await probeFor(FROZEN_MS);
      m.thaw();
      await store?.close();
      store = undefined;
      expect(frozen.changes, `${m.name} frozen`).toEqual([]);
      // A probe every interval, and the ones that drew the frozen member took about a dial timeout longer.
      expect(frozen.probes).toBeGreaterThanOrEqual(
        Math.floor(FROZEN_MS / (ETCD_PROBE_INTERVAL_MS + DEFAULT_DIAL_TIMEOUT_MS)),
      );
    }
    const victim = followers[0];
    if (!victim) throw new Error('no follower');
    await victim.kill();
    try {
      const killed = await probeFor(4_000);
      expect(killed.changes, `${victim.name} killed`).toEqual([]);
      expect(killed.probes).toBeGreaterThanOrEqual(3);
    } finally {
      await victim.start();
    }
  }, 90_000);

  test('two members killed (no quorum): the node goes fail-static within the probe interval + the probe timeout', async () => {
    const [a, b] = cluster.members;
    if (!a || !b) throw new Error('no members');
    await a.kill();
    await b.kill();
    try {
      const bound = ETCD_PROBE_INTERVAL_MS + etcdProbeTimeoutMs(DEFAULT_DIAL_TIMEOUT_MS, 3);
      const lost = await probeFor(bound + 1_000);
      expect(lost.changes[0]).toMatch(/^entered: etcdUnreachable/);
    } finally {
      await a.start();
      await b.start();
    }
  }, 60_000);
});
