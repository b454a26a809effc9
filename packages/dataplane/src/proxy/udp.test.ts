/**
 * The UDP listener: its idle timeout against wall-clock steps (NTP: vi.setSystemTime moves Date only, the faked
 * performance.now() and the sweep's interval go on as a steady clock does), and sessions whose socket to the member
 * cannot connect (no route: ENETUNREACH; 255.255.255.255 fails the same way with EACCES).
 */
import dgram from 'node:dgram';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { buildTable } from '@l4fleet/maglev';
import { freePort } from '@l4fleet/process';
import { pino } from 'pino';
import { afterEach, describe, expect, test, vi } from 'vitest';
import type { VipBackend, VipTable } from '../types.js';
import { BackendSelector } from './select.js';
import { type ProxyStats, Tally } from './stats.js';
import type { VipListener } from './tcp.js';
import { listenUdp, PENDING_DATAGRAMS_MAX } from './udp.js';

const HOST = '127.0.0.1';
const IDLE_TIMEOUT_MS = 30_000;
/** A member no socket can connect to: connect() fails with EACCES (broadcast), as with ENETUNREACH on no route. */
const UNREACHABLE: VipBackend = { name: 'm0', address: '255.255.255.255', port: 9 };
/** Bounds each wait for a datagram or a session to end; a pass takes milliseconds. */
const WAIT = { timeout: 5_000, interval: 5 };
const cleanups: (() => unknown)[] = [];

afterEach(async () => {
  vi.useRealTimers();
  vi.restoreAllMocks();
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function boundSocket(): Promise<dgram.Socket> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, HOST, r));
  cleanups.push(() => new Promise<void>((r) => s.close(() => r())));
  return s;
}

/** An echo member on loopback. */
async function echoMember(): Promise<VipBackend> {
  const member = await boundSocket();
  member.on('message', (m, rinfo) => member.send(m, rinfo.port, rinfo.address));
  return { name: 'm0', address: HOST, port: (member.address() as AddressInfo).port };
}

/** A listener for one VIP in front of `backend`. */
async function udpVip(
  backend: VipBackend,
): Promise<{ listener: VipListener; port: number; selector: BackendSelector; stats: ProxyStats }> {
  const backends = [backend];
  const port = await freePort();
  const table: VipTable = {
    vip: { address: HOST, port, protocol: 'udp' },
    hash: '5-tuple',
    seed: 1,
    backends,
    slots: buildTable(backends, 251),
    forwarding: 'nat',
  };
  const selector = new BackendSelector(table, 'maglev');
  const stats: ProxyStats = { vip: new Tally(), backends: new Map(), noBackend: new Tally(), source: new Tally() };
  const listener = await listenUdp({
    host: HOST,
    port,
    selector,
    stats,
    timeoutMs: () => IDLE_TIMEOUT_MS,
    maxSessions: 100,
    source: { admits: () => true },
    log: pino({ level: 'silent' }),
  });
  cleanups.push(() => listener.close(false));
  return { listener, port, selector, stats };
}

/** An echo member, a listener for one VIP in front of it, and a client that has had one answer through it. */
async function activeSession(): Promise<{ listener: VipListener; client: dgram.Socket }> {
  const { listener, port } = await udpVip(await echoMember());
  const client = await boundSocket();
  const answered = once(client, 'message');
  client.send('ping', port, HOST);
  await answered;
  return { listener, client };
}

/**
 * The sockets the listener opens to members from now on (its own is open already), each changed by `change` first.
 * dgram.createSocket is what udp.ts calls for a session's socket.
 */
function upstreams(change: (s: dgram.Socket) => void = () => undefined): dgram.Socket[] {
  const made: dgram.Socket[] = [];
  const create = dgram.createSocket;
  vi.spyOn(dgram, 'createSocket').mockImplementation(((...args: Parameters<typeof dgram.createSocket>) => {
    const s = create(...args);
    change(s);
    made.push(s);
    return s;
  }) as typeof dgram.createSocket);
  return made;
}

/** A client's echo of `text` through `port`, or the wait's bound exceeded. */
async function echo(client: dgram.Socket, port: number, text: string): Promise<string> {
  const reply = once(client, 'message', { signal: AbortSignal.timeout(WAIT.timeout) }) as Promise<[Buffer]>;
  client.send(text, port, HOST);
  return (await reply)[0].toString();
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

describe('proxy udp - a session whose member cannot be reached', () => {
  test('proxy udp - a session whose connect fails ends (counted closed), holds no datagram and no listener per datagram', async () => {
    const { listener, port, selector, stats } = await udpVip(UNREACHABLE);
    const client = await boundSocket();
    const made = upstreams();
    const DATAGRAMS = 50;
    for (let i = 0; i < DATAGRAMS; i++) client.send(`d${i}`, port, HOST);
    await vi.waitFor(() => expect(stats.vip.packets).toBe(DATAGRAMS), WAIT);
    await vi.waitFor(() => expect(listener.flows).toBe(0), WAIT);
    expect(made.length).toBeGreaterThan(0);
    expect(Math.max(...made.map((s) => s.listenerCount('connect')))).toBeLessThanOrEqual(1);
    // Every session opened was closed again: least-connections would otherwise shun the member for good.
    expect(selector.active.size).toBe(0);
    // None of them reached the member: the VIP counts what its clients sent, the member nothing (no no-backend drop:
    // a backend was chosen).
    expect(stats.backends.get(UNREACHABLE.address) ?? new Tally()).toMatchObject({ packets: 0, bytes: 0 });
    expect(stats.noBackend.packets).toBe(0);
  });

  test('proxy udp - after a failed connect (a route blip) the next datagram opens a new session, and the client is served', async () => {
    const { listener, port } = await udpVip(await echoMember());
    const client = await boundSocket();
    // The route is back after the first session's connect: that one fails as with no route to the member.
    let blip = true;
    upstreams((s) => {
      if (!blip) return;
      blip = false;
      const connect = s.connect.bind(s) as (port: number, address: string) => void;
      s.connect = ((_port: number, _address: string) =>
        connect(UNREACHABLE.port, UNREACHABLE.address)) as typeof s.connect;
    });
    client.send('lost', port, HOST);
    await vi.waitFor(() => expect(blip).toBe(false), WAIT);
    await vi.waitFor(() => expect(listener.flows).toBe(0), WAIT);
    expect(await echo(client, port, 'ping')).toBe('ping');
    expect(listener.flows).toBe(1);
  });

  test('proxy udp - datagrams before the connect completes are held up to a bound, not one listener each, and sent once it does', async () => {
    const member = await boundSocket();
    const received: string[] = [];
    member.on('message', (m) => received.push(m.toString()));
    const { port, stats } = await udpVip({ name: 'm0', address: HOST, port: (member.address() as AddressInfo).port });
    const client = await boundSocket();
    // The connect is held back until the test lets it go (a slow lookup would do the same).
    const held: (() => void)[] = [];
    const made = upstreams((s) => {
      const connect = s.connect.bind(s) as (port: number, address: string) => void;
      s.connect = ((p: number, a: string) => {
        held.push(() => connect(p, a));
      }) as typeof s.connect;
    });
    const DATAGRAMS = 50;
    for (let i = 0; i < DATAGRAMS; i++) client.send(`d${i}`, port, HOST);
    await vi.waitFor(() => expect(stats.vip.packets).toBe(DATAGRAMS), WAIT);
    expect(made.length).toBe(1);
    expect(made[0]?.listenerCount('connect')).toBeLessThanOrEqual(1);
    for (const go of held) go();
    await vi.waitFor(() => expect(received.length).toBe(PENDING_DATAGRAMS_MAX), WAIT);
    // Connected now: the next datagram goes straight on, after the held ones.
    client.send('after', port, HOST);
    await vi.waitFor(() => expect(received).toContain('after'), WAIT);
    // The first ones, in order: a full queue drops the datagram that arrives, as a full socket buffer does.
    expect(received).toEqual([...Array.from({ length: PENDING_DATAGRAMS_MAX }, (_, i) => `d${i}`), 'after']);
    // The member is counted what it was sent, not the datagrams dropped past the bound; the VIP everything.
    expect(stats.backends.get(HOST)).toMatchObject({
      packets: received.length,
      bytes: received.reduce((n, d) => n + d.length, 0),
    });
    expect(stats.vip.packets).toBe(DATAGRAMS + 1);
  });
});
