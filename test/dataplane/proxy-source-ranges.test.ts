/**
 * The proxy driver's sourceRanges on loopback (127.0.0.0/8 gives the clients 127.0.0.2 and 127.0.0.3; IPv6 has only
 * ::1, so a range admits or refuses it): a client outside the ranges is refused before any backend pick or session,
 * counted as `source` and not for the VIP, and never reaches a backend; an apply that changes only the ranges keeps
 * the listener, ends the open flows of the clients it now refuses and leaves the others alone.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { createProxyDataPlane, type DataPlane, type VipTable } from '@l4fleet/dataplane';
import { pino } from 'pino';
import { afterEach, describe, expect, test, vi } from 'vitest';
import {
  type ClosedBy,
  closedBy,
  connect,
  freePort,
  type NamedServer,
  nameServer,
  table,
  udpAsk,
} from './proxy-harness.js';

const logger = pino({ level: 'silent' });
const INSIDE = '127.0.0.2';
const OUTSIDE = '127.0.0.3';
const cleanups: (() => unknown)[] = [];

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Two backends on `host`, a TCP and a UDP VIP on one port of `host` (no ranges yet), and a proxy. */
async function setup(host = '127.0.0.1'): Promise<{
  dp: DataPlane;
  servers: NamedServer[];
  tcp: VipTable;
  udp: VipTable;
  names: string[];
}> {
  const servers = await Promise.all(['b0', 'b1'].map((n) => nameServer(n, host)));
  cleanups.push(() => {
    for (const s of servers) s.close();
  });
  const port = await freePort(host);
  const dp = createProxyDataPlane({ logger });
  cleanups.push(() => dp.close());
  return {
    dp,
    servers,
    tcp: table(servers, { address: host, port, protocol: 'tcp' }, '5-tuple', host),
    udp: table(servers, { address: host, port, protocol: 'udp' }, '5-tuple', host),
    names: servers.map((s) => s.name),
  };
}

function withRanges(t: VipTable, ranges?: readonly string[]): VipTable {
  const { sourceRanges: _, ...rest } = t;
  return ranges ? { ...rest, sourceRanges: ranges } : rest;
}

/** What reached the backends, summed. */
function seen(servers: readonly NamedServer[]): { connections: number; datagrams: number } {
  return {
    connections: servers.reduce((n, s) => n + s.seen.connections, 0),
    datagrams: servers.reduce((n, s) => n + s.seen.datagrams, 0),
  };
}

/** How a connection ends, or 'open' if it is still up after 3 s (a failure then reads as such, not as a timeout). */
async function ending(closed: Promise<ClosedBy>): Promise<ClosedBy | 'open'> {
  let timer: NodeJS.Timeout | undefined;
  const open = new Promise<'open'>((r) => {
    timer = setTimeout(() => r('open'), 3_000);
  });
  try {
    return await Promise.race([closed, open]);
  } finally {
    clearTimeout(timer);
  }
}

/** How a TCP client the proxy should refuse fares, watched from the first moment (the reset may beat 'connect'). */
function refusal(host: string, port: number, localAddress?: string): Promise<ClosedBy | 'open'> {
  const sock = net.connect({ host, port, ...(localAddress ? { localAddress } : {}) });
  cleanups.push(() => sock.destroy());
  return ending(closedBy(sock));
}

/** A UDP client bound to `address`, keeping every reply it gets. */
async function udpClient(address: string): Promise<{ sock: dgram.Socket; replies: string[] }> {
  const sock = dgram.createSocket(address.includes(':') ? 'udp6' : 'udp4');
  const replies: string[] = [];
  sock.on('message', (m) => replies.push(m.toString().trim()));
  await new Promise<void>((r) => sock.bind(0, address, r));
  cleanups.push(() => sock.close());
  return { sock, replies };
}

async function tcpClient(host: string, port: number, localAddress?: string): ReturnType<typeof connect> {
  const c = await connect(host, port, localAddress);
  cleanups.push(() => c.close());
  return c;
}

describe('proxy source ranges', () => {
  test('tcp - a client inside the ranges is served; one outside is reset at once, counted as source, and reaches no backend', async () => {
    const { dp, servers, tcp, names } = await setup();
    await dp.apply([withRanges(tcp, [`${INSIDE}/32`])]);
    const inside = await tcpClient('127.0.0.1', tcp.vip.port, INSIDE);
    const name = await inside.ask();
    expect(names).toContain(name);
    expect(await refusal('127.0.0.1', tcp.vip.port, OUTSIDE)).toBe('reset');
    // One more round trip through the proxy and a backend (one process, one event loop): a backend connection made
    // for the refused client would have been accepted by now.
    expect(await inside.ask()).toBe(name);

    const c = await dp.counters();
    expect(c.drops.source).toEqual({ packets: 1, bytes: 0 });
    expect(c.drops['no-backend'].packets).toBe(0);
    expect(c.vips).toEqual([expect.objectContaining({ packets: 1 })]);
    expect(c.backends.reduce((n, b) => n + b.packets, 0)).toBe(1);
    expect(c.flowTable.entries).toBe(1);
    expect(seen(servers).connections).toBe(1);
  });

  test('udp - a datagram from inside the ranges opens a session; ones from outside are ignored, counted as source, and reach no backend', async () => {
    const { dp, servers, udp, names } = await setup();
    await dp.apply([withRanges(udp, [`${INSIDE}/32`])]);
    const inside = await udpClient(INSIDE);
    const outside = await udpClient(OUTSIDE);
    const name = await udpAsk(inside.sock, '127.0.0.1', udp.vip.port);
    expect(names).toContain(name);
    outside.sock.send('xyz', udp.vip.port, '127.0.0.1');
    outside.sock.send('xyz', udp.vip.port, '127.0.0.1');
    await vi.waitFor(async () => expect((await dp.counters()).drops.source).toEqual({ packets: 2, bytes: 6 }));
    expect(await udpAsk(inside.sock, '127.0.0.1', udp.vip.port)).toBe(name);

    const c = await dp.counters();
    expect(c.vips).toEqual([expect.objectContaining({ packets: 2, bytes: 2 })]);
    expect(c.flowTable.entries).toBe(1);
    expect(seen(servers).datagrams).toBe(2);
    expect(outside.replies).toEqual([]);
  });

  test('apply that removes a prefix - its open TCP connection is reset and its UDP session ends; the admitted client keeps both on the same listener', async () => {
    const { dp, servers, tcp, udp } = await setup();
    const both = [`${INSIDE}/32`, `${OUTSIDE}/32`];
    await dp.apply([withRanges(tcp, both), withRanges(udp, both)]);
    const port = tcp.vip.port;
    const kept = await tcpClient('127.0.0.1', port, INSIDE);
    const keptName = await kept.ask();
    const dropped = await tcpClient('127.0.0.1', port, OUTSIDE);
    await dropped.ask();
    const uKept = await udpClient(INSIDE);
    const uKeptName = await udpAsk(uKept.sock, '127.0.0.1', port);
    const uDropped = await udpClient(OUTSIDE);
    await udpAsk(uDropped.sock, '127.0.0.1', port);
    expect((await dp.counters()).flowTable.entries).toBe(4);

    const r = await dp.apply([withRanges(tcp, [`${INSIDE}/32`]), withRanges(udp, [`${INSIDE}/32`])]);
    // No listener was closed or opened: a restart would also have ended the admitted client's connection.
    expect(r.transactions).toBe(0);
    expect(r.vips.map((v) => v.action)).toEqual(['updated', 'updated']);
    expect(await ending(dropped.closed)).toBe('reset');
    await vi.waitFor(async () => expect((await dp.counters()).flowTable.entries).toBe(2));
    expect(await kept.ask()).toBe(keptName);
    expect(await udpAsk(uKept.sock, '127.0.0.1', port)).toBe(uKeptName);

    // The refused client's next datagram and connection are dropped; the connection closed by the apply is not.
    const before = seen(servers);
    uDropped.sock.send('x', port, '127.0.0.1');
    await vi.waitFor(async () => expect((await dp.counters()).drops.source).toEqual({ packets: 1, bytes: 1 }));
    expect(await refusal('127.0.0.1', port, OUTSIDE)).toBe('reset');
    expect((await dp.counters()).drops.source).toEqual({ packets: 2, bytes: 1 });
    await kept.ask(); // lets a backend connection made for the refused client be accepted (see the tcp test)
    expect(seen(servers)).toEqual(before);
    expect(uDropped.replies).toHaveLength(1);
  });

  test('ranges removed - every client is admitted again, on the same listener', async () => {
    const { dp, tcp, udp, names } = await setup();
    await dp.apply([withRanges(tcp, [`${INSIDE}/32`]), withRanges(udp, [`${INSIDE}/32`])]);
    const port = tcp.vip.port;
    const kept = await tcpClient('127.0.0.1', port, INSIDE);
    const keptName = await kept.ask();
    expect(await refusal('127.0.0.1', port, OUTSIDE)).toBe('reset');
    const uOutside = await udpClient(OUTSIDE);
    uOutside.sock.send('x', port, '127.0.0.1');
    await vi.waitFor(async () => expect((await dp.counters()).drops.source.packets).toBe(2));

    const r = await dp.apply([tcp, udp]);
    expect(r.transactions).toBe(0);
    expect(r.vips.map((v) => v.action)).toEqual(['updated', 'updated']);
    const outside = await tcpClient('127.0.0.1', port, OUTSIDE);
    expect(names).toContain(await outside.ask());
    expect(names).toContain(await udpAsk(uOutside.sock, '127.0.0.1', port));
    expect(await kept.ask()).toBe(keptName);
    expect((await dp.counters()).drops.source.packets).toBe(2);
  });

  test('ipv6 - ::1 is refused by 2001:db8::/32 and admitted by ::1/128, over TCP and UDP', async () => {
    const { dp, servers, tcp, udp, names } = await setup('::1');
    const port = tcp.vip.port;
    await dp.apply([withRanges(tcp, ['2001:db8::/32']), withRanges(udp, ['2001:db8::/32'])]);
    expect(await refusal('::1', port)).toBe('reset');
    const u = await udpClient('::1');
    u.sock.send('xyz', port, '::1');
    await vi.waitFor(async () => expect((await dp.counters()).drops.source).toEqual({ packets: 2, bytes: 3 }));
    expect(seen(servers)).toEqual({ connections: 0, datagrams: 0 });
    expect(u.replies).toEqual([]);

    const r = await dp.apply([withRanges(tcp, ['::1/128']), withRanges(udp, ['::1/128'])]);
    expect(r.transactions).toBe(0);
    const c = await tcpClient('::1', port);
    expect(names).toContain(await c.ask());
    expect(names).toContain(await udpAsk(u.sock, '::1', port));
    const counters = await dp.counters();
    expect(counters.vips.map((v) => v.packets)).toEqual([1, 1]);
    expect(counters.drops.source.packets).toBe(2);
  });
});
