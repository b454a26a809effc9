/**
 * One etcd endpoint that hangs (SIGSTOP: the port stays open, nothing answers) under open watches: the watches must
 * learn it (gRPC keepalive, connection.ts) and the store must still close, so an agent's shutdown is not left to
 * systemd's SIGKILL. Three endpoints were covered by test/etcd-failover.int.test.ts; one was not.
 */
import { parseFleet } from '@l4fleet/config';
import { type EtcdClusterHandle, startEtcdCluster } from '@l4fleet/test-support/etcd';
import { until } from '@l4fleet/test-support/eventually';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { ENDPOINT_KEEPALIVE_TIME_MS, ENDPOINT_KEEPALIVE_TIMEOUT_MS } from './connection.js';
import type { StoreError } from './errors.js';
import { EtcdFleetStore } from './etcd-store.js';

const logger = pino({ level: process.env.L4FLEET_TEST_LOG ?? 'silent' });
const fleet = parseFleet({
  pools: [{ name: 'web', members: [{ address: '198.18.0.1', port: 80 }] }],
  vips: [{ address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web' }],
});

/** Bound on close() with the only endpoint frozen: far above keepalive plus the cancel waits, far below systemd's 90 s. */
const CLOSE_BOUND_MS = 25_000;

describe('store - one etcd endpoint frozen under open watches', () => {
  let cluster: EtcdClusterHandle;
  const stores: EtcdFleetStore[] = [];

  beforeAll(async () => {
    cluster = await startEtcdCluster({ members: 1 });
  });
  afterEach(async () => {
    for (const m of cluster.members) m.thaw();
    for (const s of stores.splice(0)) await s.close();
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  const open = (prefix: string) => {
    const s = new EtcdFleetStore({ endpoints: cluster.endpoints, prefix, logger });
    stores.push(s);
    return s;
  };

  test('the watch reports the hung endpoint (keepalive) and resumes after it is thawed', async () => {
    const store = open('/wc-keepalive');
    await store.apply(fleet);
    const errors: StoreError[] = [];
    const seen: number[] = [];
    await store.watchDesired({
      onUpdate: (d) => seen.push(d.revision),
      onError: (e) => errors.push(e),
    });
    const writer = open('/wc-keepalive');
    // An update written after the first read comes through the watch: its stream is open on the endpoint.
    const r0 = await writer.apply(parseFleet({ ...fleet, hashSeed: 4 }));
    await until('update through the watch', () => seen.at(-1) === r0.revision, 10_000, 50);
    const member = cluster.members[0];
    if (!member) throw new Error('no member');
    member.freeze();
    try {
      await until(
        'watch error while frozen',
        () => errors.length > 0,
        ENDPOINT_KEEPALIVE_TIME_MS + ENDPOINT_KEEPALIVE_TIMEOUT_MS + 10_000,
        100,
      );
    } finally {
      member.thaw();
    }
    const r = await writer.apply(parseFleet({ ...fleet, hashSeed: 5 }));
    await until('update after thaw', () => seen.at(-1) === r.revision, 20_000, 100);
  }, 60_000);

  test('close() returns while the only endpoint is frozen under a watch', async () => {
    const store = new EtcdFleetStore({ endpoints: cluster.endpoints, prefix: '/wc-close', logger });
    await store.apply(fleet);
    const seen: number[] = [];
    await store.watchDesired({ onUpdate: (d) => seen.push(d.revision), onError: () => undefined });
    // An update written after the first read comes through the watch: its stream is open on the endpoint.
    const r = await open('/wc-close').apply(parseFleet({ ...fleet, hashSeed: 6 }));
    await until('update through the watch', () => seen.at(-1) === r.revision, 10_000, 50);
    const member = cluster.members[0];
    if (!member) throw new Error('no member');
    member.freeze();
    let timer: NodeJS.Timeout | undefined;
    try {
      const outcome = await Promise.race([
        store.close().then(() => 'closed'),
        new Promise<string>((r) => {
          timer = setTimeout(() => r('still closing'), CLOSE_BOUND_MS);
        }),
      ]);
      expect(outcome).toBe('closed');
    } finally {
      clearTimeout(timer);
      member.thaw();
    }
  }, 60_000);
});
