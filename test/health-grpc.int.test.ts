/**
 * The `grpc` check end to end: a fleet in a real etcd whose pool asks the gRPC Health Checking Protocol, the real
 * agent (runAgent, what `l4fleet agent` runs) probing two real gRPC servers (@grpc/grpc-js with the health service,
 * test/support/grpc-health.ts) on their own loopback addresses, the aggregator's decisions written back to etcd, and
 * the node's status record naming why. The speaker is the fake one and the data plane the recording one.
 */
import type { RunningAgent } from '@l4fleet/agent';
import { parseFleet } from '@l4fleet/config';
import type { EtcdFleetStore } from '@l4fleet/store';
import {
  decidedAs,
  type OneRecordingAgent,
  probeFailuresNaming,
  startOneRecordingAgent,
} from '@l4fleet/test-support/etcd-agents';
import { type GrpcHealthServer, startGrpcHealthServer } from '@l4fleet/test-support/grpc-health';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

const PREFIX = `/health-grpc-${process.pid}`;
const SERVICE = 'myapp.v1.Orders';
const ADDRESSES = { a: '127.0.0.2', b: '127.0.0.3' } as const;

let env: OneRecordingAgent | undefined;
let admin: EtcdFleetStore | undefined;
let running: RunningAgent | undefined;
const servers = new Map<string, GrpcHealthServer>();

beforeAll(async () => {
  for (const address of Object.values(ADDRESSES)) {
    servers.set(address, await startGrpcHealthServer({ address, statuses: [[SERVICE, 'SERVING']] }));
  }
  const ports = new Set([...servers.values()].map((s) => s.port));
  const fleet = parseFleet({
    hashSeed: 1,
    pools: [
      {
        name: 'orders',
        healthCheck: { type: 'grpc', service: SERVICE, intervalMs: 300, timeoutMs: 250, rise: 1, fall: 1 },
        members: Object.entries(ADDRESSES).map(([name, address]) => ({
          name,
          address,
          port: servers.get(address)?.port ?? 0,
        })),
      },
    ],
    // The members listen on ports the kernel chose: the VIP's port is any one of them (no data plane here).
    vips: [{ address: '198.51.100.10', port: [...ports][0] ?? 50051, protocol: 'tcp', pool: 'orders' }],
  });
  env = await startOneRecordingAgent(PREFIX, fleet, pino({ level: 'silent' }));
  admin = env.admin;
  running = env.running;
}, 60_000);

afterAll(async () => {
  await env?.close();
  await Promise.all([...servers.values()].map((s) => s.close()));
});

const decided = (want: Record<string, string>) => decidedAs(running, want);
const reasonOf = async (member: string) => (await probeFailuresNaming(admin, member))[member]?.reason;

describe('grpc health check: the real agent, etcd and gRPC servers', () => {
  test('both members SERVING: decided up', async () => {
    expect(await decided({ 'orders/a': 'up', 'orders/b': 'up' })).toMatchObject({ 'orders/a': 'up' });
  });

  test('b says NOT_SERVING: decided down in etcd, the status record names it; SERVING again: up', async () => {
    servers.get(ADDRESSES.b)?.statuses.set(SERVICE, 'NOT_SERVING');
    expect(await decided({ 'orders/a': 'up', 'orders/b': 'down' })).toMatchObject({ 'orders/b': 'down' });
    expect((await admin?.getDecided())?.decided.get('orders/b')).toBe('down');
    expect(await reasonOf('orders/b')).toBe('serving status NOT_SERVING');
    servers.get(ADDRESSES.b)?.statuses.set(SERVICE, 'SERVING');
    expect(await decided({ 'orders/a': 'up', 'orders/b': 'up' })).toMatchObject({ 'orders/b': 'up' });
  });

  test('a forgets the service (NOT_FOUND): down with what the code means', async () => {
    servers.get(ADDRESSES.a)?.statuses.delete(SERVICE);
    expect(await decided({ 'orders/a': 'down', 'orders/b': 'up' })).toMatchObject({ 'orders/a': 'down' });
    expect(await reasonOf('orders/a')).toBe(
      `grpc-status 5 (NOT_FOUND: the server does not know the service): unknown service ${SERVICE}`,
    );
  });
});
