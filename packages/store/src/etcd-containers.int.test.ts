/**
 * The store against etcd in a container (L4FLEET_TEST_RUNTIME=containers: testcontainers, a reachable Docker engine,
 * the image built locally by test/support/docker-image.ts). Skipped in every other runtime, so CI (no engine) does
 * not run it; the whole of etcd-store.int.test.ts also runs in containers when the variable is set.
 */
import { parseFleet } from '@l4fleet/config';
import { ensureEtcdImage } from '@l4fleet/test-support/docker-image';
import { type EtcdHandle, startEtcd } from '@l4fleet/test-support/etcd';
import { until as waitUntil } from '@l4fleet/test-support/eventually';
import pino from 'pino';
import { getContainerRuntimeClient } from 'testcontainers';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { EtcdFleetStore } from './etcd-store.js';
import type { DesiredState, FleetStore } from './types.js';

const logger = pino({ level: process.env.L4FLEET_TEST_LOG ?? 'silent' });
const containers = process.env.L4FLEET_TEST_RUNTIME === 'containers';

const fleetOf = (members: number, seed?: number) =>
  parseFleet({
    ...(seed === undefined ? {} : { hashSeed: seed }),
    pools: [
      { name: 'web', members: Array.from({ length: members }, (_, i) => ({ address: `198.18.1.${i}`, port: 80 })) },
    ],
    vips: [{ address: '198.18.0.10', port: 80, protocol: 'tcp', pool: 'web' }],
  });

/** Polls until `fn` is truthy (15 s, every 50 ms). */
const until = <T>(what: string, fn: () => T | Promise<T>, timeoutMs = 15_000) => waitUntil(what, fn, timeoutMs, 50);

/** The labelled test container publishing `port`, or undefined: proves etcd is not the host process runtime. */
async function containerOnPort(port: number): Promise<string | undefined> {
  const list = await (await getContainerRuntimeClient()).container.list();
  return list.find((c) => c.Labels['l4fleet.test'] === 'etcd' && c.Ports.some((p) => p.PublicPort === port))?.Id;
}

const title = containers
  ? 'store - etcd in a container (L4FLEET_TEST_RUNTIME=containers)'
  : `store - etcd in a container [skipped: L4FLEET_TEST_RUNTIME is "${process.env.L4FLEET_TEST_RUNTIME ?? ''}", not "containers"]`;

describe.skipIf(!containers)(title, () => {
  let etcd: EtcdHandle | undefined;
  const stores: FleetStore[] = [];
  const open = (prefix: string, extra: Partial<ConstructorParameters<typeof EtcdFleetStore>[0]> = {}) => {
    const s = new EtcdFleetStore({ endpoints: etcd!.endpoints, prefix, logger, ...extra });
    stores.push(s);
    return s;
  };
  const timings: Record<string, number> = {};
  const timed = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    try {
      return await fn();
    } finally {
      timings[name] = Math.round(performance.now() - t0);
    }
  };

  beforeAll(async () => {
    // A cold engine builds the base (debootstrap) and the etcd image first: about a minute or two.
    await timed('imageMs', () => ensureEtcdImage());
  }, 600_000);
  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close();
    await etcd?.stop();
    etcd = undefined;
  });
  afterAll(() => {
    console.log(`etcd containers timings ${JSON.stringify(timings)}`);
  });

  test('apply/get round trip; watch across a container restart and a kill/start', async () => {
    etcd = await timed('startMs', () => startEtcd());
    const port = Number(new URL(etcd.endpoints[0]!).port);
    expect(await containerOnPort(port)).toBeTruthy();

    const prefix = `/ct-${Math.random().toString(36).slice(2, 8)}`;
    const writer = open(prefix);
    const reader = open(prefix);
    const r1 = await writer.apply(fleetOf(1, 7));
    expect(await reader.getDesired()).toMatchObject({ revision: r1.revision, fleet: fleetOf(1, 7) });

    const seen: DesiredState[] = [];
    const watch = await reader.watchDesired({ onUpdate: (s) => seen.push(s), onError: () => undefined });
    await writer.apply(fleetOf(2));
    await until('update before restart', () => seen.length === 2);

    await timed('restartMs', () => etcd!.restart()); // SIGTERM, same container, same published port and data
    const r3 = await until('write after restart', () => writer.apply(fleetOf(3)).catch(() => undefined));
    await until('update after restart', () => seen.at(-1)?.revision === r3.revision);

    await etcd.kill();
    await expect(
      new EtcdFleetStore({ endpoints: etcd.endpoints, prefix, logger, dialTimeoutMs: 500 }).getDesired(),
    ).rejects.toThrow();
    await timed('killStartMs', () => etcd!.start());
    const r4 = await until('write after kill/start', () => writer.apply(fleetOf(4)).catch(() => undefined));
    await until('update after kill/start', () => seen.at(-1)?.revision === r4.revision);

    expect(seen.map((s) => s.fleet.pools[0]!.members.length)).toEqual([1, 2, 3, 4]);
    expect(new Set(seen.map((s) => s.revision)).size).toBe(4);
    // etcdctl runs inside the container and sees what the store wrote through the published port.
    expect(await etcd.etcdctl('get', '--prefix', '--keys-only', `${prefix}/`)).toContain(
      `${prefix}/v1/desired/current`,
    );
    await watch.close();
    await timed('stopMs', () => etcd!.stop());
    expect(await containerOnPort(port)).toBeUndefined();
  }, 120_000);

  test('TLS with client certificates and root auth work through the published port', async () => {
    etcd = await timed('startTlsAuthMs', () => startEtcd({ tls: true, rootPassword: 'sekret' }));
    expect(etcd.endpoints[0]).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const tls = etcd.tls!;
    const creds = { tls: { ca: tls.ca, cert: tls.cert, key: tls.key } };
    const store = open('/ct-tls', { ...creds, auth: { username: 'root', password: 'sekret' } });
    const r = await store.apply(fleetOf(2, 9));
    expect((await store.getDesired()).revision).toBe(r.revision);
    const wrong = open('/ct-tls', { ...creds, auth: { username: 'root', password: 'wrong' }, dialTimeoutMs: 2_000 });
    await expect(wrong.getDesired()).rejects.toThrow();
    await etcd.restart(); // the wait strategy's health check passes with auth enabled
    expect((await store.getDesired()).revision).toBe(r.revision);
  }, 120_000);
});
