/**
 * The UDP listener's idle timeout against wall-clock steps (NTP): vi.setSystemTime moves Date only, the faked
 * performance.now() and the sweep's interval go on as a steady clock does.
 */
import dgram from 'node:dgram';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { buildTable } from '@l4fleet/maglev';
import { freePort } from '@l4fleet/process';
import { pino } from 'pino';
import { afterEach, describe, expect, test, vi } from 'vitest';
import type { VipTable } from '../types.js';
import { BackendSelector } from './select.js';
import { Tally } from './stats.js';
import type { VipListener } from './tcp.js';
import { listenUdp } from './udp.js';

const HOST = '127.0.0.1';
const IDLE_TIMEOUT_MS = 30_000;
const cleanups: (() => unknown)[] = [];

afterEach(async () => {
  vi.useRealTimers();
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function boundSocket(): Promise<dgram.Socket> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, HOST, r));
  cleanups.push(() => new Promise<void>((r) => s.close(() => r())));
  return s;
}

/** An echo member, a listener for one VIP in front of it, and a client that has had one answer through it. */
async function activeSession(): Promise<{ listener: VipListener; client: dgram.Socket }> {
  const member = await boundSocket();
  member.on('message', (m, rinfo) => member.send(m, rinfo.port, rinfo.address));
  const backends = [{ name: 'm0', address: HOST, port: (member.address() as AddressInfo).port }];
  const port = await freePort();
  const table: VipTable = {
    vip: { address: HOST, port, protocol: 'udp' },
    hash: '5-tuple',
    seed: 1,
    backends,
    slots: buildTable(backends, 251),
    forwarding: 'nat',
  };
  const listener = await listenUdp({
    host: HOST,
    port,
    selector: new BackendSelector(table, 'maglev'),
    stats: { vip: new Tally(), backends: new Map(), noBackend: new Tally(), source: new Tally() },
    timeoutMs: () => IDLE_TIMEOUT_MS,
    maxSessions: 100,
    source: { admits: () => true },
    log: pino({ level: 'silent' }),
  });
  cleanups.push(() => listener.close(false));
  const client = await boundSocket();
  const answered = once(client, 'message');
  client.send('ping', port, HOST);
  await answered;
  return { listener, client };
}

describe('proxy udp - idle timeout on a steady clock', () => {
  test('a wall clock stepped forward past the idle timeout ends no session that is not idle', async () => {
    vi.useFakeTimers();
    const { listener } = await activeSession();
    expect(listener.flows).toBe(1);
    vi.setSystemTime(Date.now() + 3_600_000);
    vi.advanceTimersByTime(1_000);
    expect(listener.flows).toBe(1);
  });

  test('a wall clock stepped back keeps no idle session past the idle timeout', async () => {
    vi.useFakeTimers();
    const { listener } = await activeSession();
    vi.setSystemTime(Date.now() - 3_600_000);
    vi.advanceTimersByTime(5 * 60_000);
    expect(listener.flows).toBe(0);
  });
});
