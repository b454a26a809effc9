/**
 * The proxy driver applies a VIP's profile as socket timeouts (design note 0012), on loopback: an idle TCP connection
 * is closed (drop) or reset (reset) at idleTimeoutS, a closing one at tcpCloseTimeoutS, a UDP session ends at
 * idleTimeoutS; the connect to the member is bounded by tcpHandshakeTimeoutS alone; a table without a profile keeps the
 * behaviour before profiles (no idle timeout, the driver's connectTimeoutMs).
 */
import dgram from 'node:dgram';
import net from 'node:net';
import type { VipProfile } from '@l4fleet/config';
import { createProxyDataPlane, type DataPlane, type VipTable } from '@l4fleet/dataplane';
import { buildTable, type Protocol } from '@l4fleet/maglev';
import { pino } from 'pino';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { freePort } from './proxy-harness.js';

const logger = pino({ level: 'silent' });
const cleanups: (() => unknown)[] = [];

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** An echo member on TCP and UDP of one port; keeps its connections open until the peer closes. */
async function member(): Promise<number> {
  const tcp = net.createServer({ allowHalfOpen: true }, (c) => {
    c.on('data', (d) => c.write(d));
    c.on('error', () => undefined);
  });
  await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
  const port = (tcp.address() as net.AddressInfo).port;
  const udp = dgram.createSocket('udp4');
  await new Promise<void>((r) => udp.bind(port, '127.0.0.1', r));
  udp.on('message', (m, rinfo) => udp.send(m, rinfo.port, rinfo.address));
  cleanups.push(() => {
    tcp.close();
    udp.close();
  });
  return port;
}

/**
 * A TCP member that answers the client's FIN (its 'end') with `chunks` chunks one every `everyMs`, then its own FIN:
 * a slow answer still streaming in the closing state.
 */
async function streamingMember(chunks: number, everyMs: number): Promise<number> {
  const timers = new Set<NodeJS.Timeout>();
  const tcp = net.createServer({ allowHalfOpen: true }, (c) => {
    c.on('error', () => undefined);
    c.on('data', () => undefined);
    c.once('end', () => {
      let sent = 0;
      const t = setInterval(() => {
        if (c.destroyed) return clearInterval(t);
        c.write(`chunk${sent};`);
        sent += 1;
        if (sent === chunks) {
          clearInterval(t);
          c.end();
        }
      }, everyMs);
      timers.add(t);
    });
  });
  await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
  cleanups.push(() => {
    for (const t of timers) clearInterval(t);
    tcp.close();
  });
  return (tcp.address() as net.AddressInfo).port;
}

async function proxyWith(
  protocol: Protocol,
  profile?: VipProfile,
  memberPortGiven?: number,
): Promise<{ dp: DataPlane; port: number; table: VipTable }> {
  const memberPort = memberPortGiven ?? (await member());
  const port = await freePort();
  const backends = [{ name: 'm0', address: '127.0.0.1', port: memberPort }];
  const t: VipTable = {
    vip: { address: '127.0.0.1', port, protocol },
    hash: '5-tuple',
    seed: 1,
    backends,
    slots: buildTable(backends, 251),
    forwarding: 'nat',
    ...(profile ? { profile } : {}),
  };
  const dp = createProxyDataPlane({ logger });
  cleanups.push(() => dp.close());
  await dp.apply([t]);
  return { dp, port, table: t };
}

/** Connects, gets one echo, then waits (at most `waitMs`) for the connection to end: 'end', 'reset' or 'open'. */
async function idleOutcome(port: number, waitMs: number): Promise<string> {
  const sock = net.connect({ host: '127.0.0.1', port });
  cleanups.push(() => sock.destroy());
  await new Promise<void>((r) => sock.once('connect', r));
  const echoed = new Promise((r) => sock.once('data', r));
  sock.write('x');
  await echoed;
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve('open'), waitMs);
    sock.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(e.code === 'ECONNRESET' ? 'reset' : (e.code ?? 'error'));
    });
    sock.once('end', () => {
      clearTimeout(timer);
      resolve('end');
    });
  });
}

const tcpProfile = (p: Partial<VipProfile>): VipProfile => ({
  idleTimeoutS: 1,
  tcpHandshakeTimeoutS: 5,
  tcpCloseTimeoutS: 5,
  onTimeout: 'drop',
  ...p,
});

describe('proxy profile', () => {
  test('tcp idle timeout, drop - the idle connection is closed (FIN) after idleTimeoutS', async () => {
    const { port } = await proxyWith('tcp', tcpProfile({}));
    expect(await idleOutcome(port, 3_000)).toBe('end');
  });

  test('tcp idle timeout, reset - the idle connection is reset after idleTimeoutS', async () => {
    const { port } = await proxyWith('tcp', tcpProfile({ onTimeout: 'reset' }));
    expect(await idleOutcome(port, 3_000)).toBe('reset');
  });

  test('a changed profile alone is reported updated, on the same listener; the same again unchanged', async () => {
    const { dp, table } = await proxyWith('tcp', tcpProfile({}));
    const changed = await dp.apply([{ ...table, profile: tcpProfile({ idleTimeoutS: 5 }) }]);
    expect(changed.vips.map((v) => v.action)).toEqual(['updated']);
    expect(changed.transactions).toBe(0);
    const again = await dp.apply([{ ...table, profile: tcpProfile({ idleTimeoutS: 5 }) }]);
    expect(again.vips.map((v) => v.action)).toEqual(['unchanged']);
  });

  test('no profile in the table - the idle connection stays open', async () => {
    const { port } = await proxyWith('tcp');
    expect(await idleOutcome(port, 2_000)).toBe('open');
  });

  test('tcp close timeout - a half-closed connection is ended after tcpCloseTimeoutS', async () => {
    const { port } = await proxyWith('tcp', tcpProfile({ idleTimeoutS: 60, tcpCloseTimeoutS: 1 }));
    const sock = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    cleanups.push(() => sock.destroy());
    await new Promise<void>((r) => sock.once('connect', r));
    const closed = new Promise<number>((r) => {
      const started = Date.now();
      sock.once('close', () => r(Date.now() - started));
    });
    sock.on('error', () => undefined);
    sock.end(); // our FIN; the echo member keeps its side open
    const ms = await Promise.race([closed, new Promise<number>((r) => setTimeout(() => r(-1), 4_000))]);
    expect(ms).toBeGreaterThan(500);
    expect(ms).toBeLessThan(3_000);
  });

  test('tcp close timeout - restarted by each byte: an answer streamed after the client FIN arrives whole', async () => {
    // 12 chunks 250 ms apart take 3 s after the client's FIN, longer than tcpCloseTimeoutS 1, with no gap of 1 s:
    // conntrack restarts its closing timeout on each packet, and so does the proxy.
    const { port } = await proxyWith(
      'tcp',
      tcpProfile({ idleTimeoutS: 60, tcpCloseTimeoutS: 1 }),
      await streamingMember(12, 250),
    );
    const sock = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    cleanups.push(() => sock.destroy());
    await new Promise<void>((r) => sock.once('connect', r));
    let got = '';
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      got += d;
    });
    sock.on('error', () => undefined);
    const ended = new Promise<void>((r) => sock.once('close', () => r()));
    sock.end();
    await Promise.race([ended, new Promise((r) => setTimeout(r, 8_000))]);
    expect(got.split(';').filter(Boolean)).toHaveLength(12);
  });

  /** The socket timeouts the proxy sets while one connection through it echoes once (ms, every socket). */
  async function timeoutsSet(port: number): Promise<number[]> {
    const spy = vi.spyOn(net.Socket.prototype, 'setTimeout');
    cleanups.push(() => spy.mockRestore());
    await idleOutcome(port, 0);
    return spy.mock.calls.map((c) => c[0]);
  }

  test.each([
    ['the default 10 s (not the driver connect timeout 5 s)', 10, 10_000],
    ['30 s: above the driver connect timeout, not cut to it', 30, 30_000],
    ['2 s', 2, 2_000],
  ])('tcp handshake timeout - the connect to the member is bounded by tcpHandshakeTimeoutS: %s', async (_n, s, ms) => {
    const { port } = await proxyWith('tcp', tcpProfile({ idleTimeoutS: 60, tcpHandshakeTimeoutS: s }));
    const set = await timeoutsSet(port);
    // The member connect's timer, then the client's idle timer (60 s), and the connect timer cleared (0).
    expect(set).toContain(ms);
    expect(set.filter((v) => v !== 0 && v !== 60_000)).toEqual([ms]);
  });

  test('no profile in the table - the connect to the member is bounded by the driver connect timeout', async () => {
    const { port } = await proxyWith('tcp');
    expect((await timeoutsSet(port)).filter((v) => v !== 0)).toEqual([5_000]);
  });

  test('udp idle timeout - a session ends after idleTimeoutS', async () => {
    const { dp, port } = await proxyWith('udp', { idleTimeoutS: 1, onTimeout: 'drop' });
    const sock = dgram.createSocket('udp4');
    cleanups.push(() => sock.close());
    const reply = new Promise((r) => sock.once('message', r));
    sock.send('x', port, '127.0.0.1');
    await reply;
    expect((await dp.counters()).flowTable.entries).toBe(1);
    await new Promise((r) => setTimeout(r, 2_500));
    expect((await dp.counters()).flowTable.entries).toBe(0);
  });
});
