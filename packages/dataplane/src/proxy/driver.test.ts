/** The proxy driver on loopback (127.0.0.1 only): removing VIPs while flows are open, listeners lost and repaired. */
import dgram from 'node:dgram';
import { once } from 'node:events';
import net from 'node:net';
import { buildTable, type Protocol } from '@l4fleet/maglev';
import { freePort } from '@l4fleet/process';
import { pino } from 'pino';
import { afterEach, describe, expect, test } from 'vitest';
import type { VipTable } from '../types.js';
import { createProxyDataPlane } from './driver.js';
import { nodeSockets, type ProxySockets } from './sockets.js';

const logger = pino({ level: 'silent' });
const HOST = '127.0.0.1';
const cleanups: (() => unknown)[] = [];

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** An echo member on TCP and UDP of one port. */
async function member(host = HOST): Promise<number> {
  const tcp = net.createServer({ allowHalfOpen: true }, (c) => {
    c.on('data', (d) => c.write(d));
    c.on('error', () => undefined);
  });
  await new Promise<void>((r) => tcp.listen(0, host, r));
  const port = (tcp.address() as net.AddressInfo).port;
  const udp = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
  await new Promise<void>((r) => udp.bind(port, host, r));
  udp.on('message', (m, rinfo) => {
    udp.send(m, rinfo.port, rinfo.address);
  });
  cleanups.push(() => {
    tcp.close();
    udp.close();
  });
  return port;
}

async function table(protocol: Protocol, memberPort: number, opts: Partial<VipTable> = {}): Promise<VipTable> {
  const backends = [{ name: 'm0', address: HOST, port: memberPort }];
  return {
    vip: { address: HOST, port: await freePort(), protocol },
    hash: '5-tuple',
    seed: 1,
    backends,
    slots: buildTable(backends, 251),
    forwarding: 'nat',
    ...opts,
  };
}

const connectOutcome = (port: number, host = HOST): Promise<string> =>
  new Promise((resolve) => {
    const s = net.connect({ host, port });
    s.once('connect', () => {
      s.destroy();
      resolve('connected');
    });
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
  });

/** What a client from `host` sees: its echo back, or how the connection ended (ECONNRESET for a refused one). */
const echoOutcome = (port: number, host: string): Promise<string> =>
  new Promise((resolve) => {
    const s = net.connect({ host, port });
    s.once('connect', () => s.write('ping'));
    s.once('data', (d) => {
      s.destroy();
      resolve(d.toString());
    });
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    s.once('close', () => resolve('closed'));
  });

/** Node's listening sockets, each kept so a test can close it behind the driver's back, as a fault would. */
function keptSockets(): ProxySockets & { readonly tcp: net.Server[]; readonly udp: dgram.Socket[] } {
  const tcp: net.Server[] = [];
  const udp: dgram.Socket[] = [];
  return {
    tcp,
    udp,
    tcpServer(options, onConnection) {
      const s = nodeSockets.tcpServer(options, onConnection);
      tcp.push(s);
      return s;
    },
    udpSocket(options) {
      const s = nodeSockets.udpSocket(options);
      udp.push(s);
      return s;
    },
  };
}

/** A client's echo of `text` over UDP through `port`. */
async function udpEcho(client: dgram.Socket, port: number, text: string): Promise<string> {
  const reply = once(client, 'message') as Promise<[Buffer]>;
  client.send(text, port, HOST);
  return (await reply)[0].toString();
}

describe('proxy driver - lost listeners', () => {
  test('proxy driver - verify finds a TCP listener closed behind the driver, listens again and reports the repair; open connections stay', async () => {
    const t = await table('tcp', await member());
    const sockets = keptSockets();
    const dp = createProxyDataPlane({ logger, sockets });
    cleanups.push(() => dp.close());
    await dp.apply([t]);
    const open = net.connect({ host: HOST, port: t.vip.port });
    cleanups.push(() => open.destroy());
    await once(open, 'connect');
    // The fault: the listening socket closes under the driver (not through its close()).
    const [server] = sockets.tcp;
    server?.close();
    expect(server?.listening).toBe(false);
    expect(await connectOutcome(t.vip.port)).toBe('ECONNREFUSED');
    const r = await dp.verify();
    expect(r.transactions).toBe(1);
    expect(r.vips).toEqual([expect.objectContaining({ vip: `${HOST}:${t.vip.port}/tcp`, action: 'updated' })]);
    expect(sockets.tcp).toHaveLength(2);
    expect(await echoOutcome(t.vip.port, HOST)).toBe('ping');
    // The connection accepted before the fault goes on, and still counts as a flow of the VIP.
    const echoed = once(open, 'data') as Promise<[Buffer]>;
    open.write('still');
    expect((await echoed)[0].toString()).toBe('still');
    // Repaired once: the next verify finds nothing.
    expect(await dp.verify()).toMatchObject({
      transactions: 0,
      vips: [expect.objectContaining({ action: 'unchanged' })],
    });
  });

  test('proxy driver - verify finds a UDP socket closed behind the driver, binds it again and reports the repair; its session stays', async () => {
    const t = await table('udp', await member());
    const sockets = keptSockets();
    const dp = createProxyDataPlane({ logger, sockets });
    cleanups.push(() => dp.close());
    await dp.apply([t]);
    const client = dgram.createSocket('udp4');
    cleanups.push(() => client.close());
    await new Promise<void>((r) => client.bind(0, HOST, r));
    expect(await udpEcho(client, t.vip.port, 'one')).toBe('one');
    const [socket] = sockets.udp;
    const closed = once(socket as dgram.Socket, 'close');
    socket?.close();
    await closed;
    const r = await dp.verify();
    expect(r.transactions).toBe(1);
    expect(r.vips).toEqual([expect.objectContaining({ vip: `${HOST}:${t.vip.port}/udp`, action: 'updated' })]);
    expect(await udpEcho(client, t.vip.port, 'two')).toBe('two');
    // The client's session (and its member socket) outlived the lost socket: still one flow.
    expect((await dp.counters()).flowTable.entries).toBe(1);
  });

  test('proxy driver - a lost listener whose port another socket took fails verify with LISTEN_FAILED naming the VIP and port; an apply repairs it once the port is free', async () => {
    const t = await table('tcp', await member());
    const sockets = keptSockets();
    const dp = createProxyDataPlane({ logger, sockets });
    cleanups.push(() => dp.close());
    await dp.apply([t]);
    sockets.tcp[0]?.close();
    const squatter = net.createServer((c) => c.destroy());
    await new Promise<void>((resolve, reject) => {
      squatter.once('error', reject);
      squatter.listen(t.vip.port, HOST, resolve);
    });
    const err = await dp.verify().catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'LISTEN_FAILED', cause: expect.objectContaining({ code: 'EADDRINUSE' }) });
    expect((err as Error).message).toContain(`vip ${HOST}:${t.vip.port}/tcp`);
    expect((err as Error).message).toContain(`${HOST}:${t.vip.port}/tcp`);
    await new Promise<void>((r) => squatter.close(() => r()));
    // The agent retries a failed verify as an apply of the same tables: that repairs it too.
    const r = await dp.apply([t]);
    expect(r.transactions).toBe(1);
    expect(r.vips).toEqual([expect.objectContaining({ action: 'updated' })]);
    expect(await echoOutcome(t.vip.port, HOST)).toBe('ping');
  });

  test('proxy driver - an error a listener emits after its bind is logged, not thrown; a listener still listening needs no repair', async () => {
    const t = await table('tcp', await member());
    const sockets = keptSockets();
    const dp = createProxyDataPlane({ logger, sockets });
    cleanups.push(() => dp.close());
    await dp.apply([t]);
    // What node emits when accept() fails (EMFILE): the listening socket stays open. Without a listener: thrown.
    sockets.tcp[0]?.emit('error', Object.assign(new Error('accept EMFILE'), { code: 'EMFILE' }));
    expect(await dp.verify()).toMatchObject({ transactions: 0 });
    expect(await echoOutcome(t.vip.port, HOST)).toBe('ping');
  });
});

describe('proxy driver', () => {
  test('proxy driver - removing a TCP VIP with an open connection stops accepting at once; the connection drains until close()', async () => {
    const t = await table('tcp', await member());
    const dp = createProxyDataPlane({ logger });
    cleanups.push(() => dp.close());
    await dp.apply([t]);
    const client = net.connect({ host: HOST, port: t.vip.port });
    cleanups.push(() => client.destroy());
    client.on('error', () => undefined);
    const closed = new Promise<void>((r) => client.once('close', () => r()));
    await new Promise<void>((r) => client.once('connect', () => r()));
    const echo = (text: string): Promise<string> =>
      new Promise((r) => {
        client.once('data', (d) => r(d.toString()));
        client.write(text);
      });
    expect(await echo('a')).toBe('a');
    // Before the fix this apply waited for the connection to end (server.close's callback), holding the apply queue.
    const result = await dp.apply([]);
    expect(result.vips).toEqual([expect.objectContaining({ action: 'removed' })]);
    expect(await connectOutcome(t.vip.port)).toBe('ECONNREFUSED');
    expect(await echo('b')).toBe('b');
    // The draining connection is still a flow of the proxy's.
    expect((await dp.counters()).flowTable.entries).toBe(1);
    // The driver's close ends the draining connection too.
    await dp.close();
    await closed;
  });

  test('proxy driver - a UDP session whose member keeps sending outlives idleTimeoutS (idle means idle both ways)', async () => {
    // The member pushes a datagram every 200 ms to whoever wrote to it last (the session's socket); the client writes once.
    const pusher = dgram.createSocket('udp4');
    cleanups.push(() => pusher.close());
    pusher.on('error', () => undefined);
    await new Promise<void>((r) => pusher.bind(0, HOST, r));
    let session: dgram.RemoteInfo | undefined;
    pusher.on('message', (_m, rinfo) => {
      session = rinfo;
    });
    const timer = setInterval(() => {
      if (session) pusher.send('push', session.port, session.address);
    }, 200);
    cleanups.push(() => clearInterval(timer));
    const t = await table('udp', (pusher.address() as net.AddressInfo).port, {
      profile: { idleTimeoutS: 1, onTimeout: 'drop' },
    });
    const dp = createProxyDataPlane({ logger });
    cleanups.push(() => dp.close());
    await dp.apply([t]);
    const client = dgram.createSocket('udp4');
    cleanups.push(() => client.close());
    await new Promise<void>((r) => client.bind(0, HOST, r));
    let received = 0;
    client.on('message', () => {
      received += 1;
    });
    client.send('hello', t.vip.port, HOST);
    // Well past the 1 s idle timeout (the sweep runs each second), the member's datagrams still reach the client.
    await new Promise((r) => setTimeout(r, 2_500));
    const before = received;
    await new Promise((r) => setTimeout(r, 600));
    expect(before).toBeGreaterThan(0);
    expect(received).toBeGreaterThan(before);
    expect((await dp.counters()).flowTable.entries).toBe(1);
  });

  test('proxy driver - a VIP replaced by another on the same port under listenAddress reuses its listener', async () => {
    const port = await freePort();
    const t = await table('tcp', await member(), { vip: { address: '198.51.100.1', port, protocol: 'tcp' } });
    const dp = createProxyDataPlane({ logger, listenAddress: HOST });
    cleanups.push(() => dp.close());
    await dp.apply([t]);
    const replaced = { ...t, vip: { ...t.vip, address: '198.51.100.2' } };
    const result = await dp.apply([replaced]);
    expect(result.vips).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ vip: '198.51.100.1:' + port + '/tcp', action: 'removed' }),
        expect.objectContaining({ vip: '198.51.100.2:' + port + '/tcp', action: 'added' }),
      ]),
    );
    expect(await connectOutcome(port)).toBe('connected');
    expect((await dp.counters()).vips.map((v) => v.vip)).toEqual([`198.51.100.2:${port}/tcp`]);
    // And back again: the listener follows its bind, whichever VIP holds it.
    await dp.apply([t]);
    expect(await connectOutcome(port)).toBe('connected');
  });

  test('proxy driver - two VIPs that would share one listener under listenAddress are refused, naming both', async () => {
    const port = await freePort();
    const t = await table('tcp', await member(), { vip: { address: '198.51.100.1', port, protocol: 'tcp' } });
    const dp = createProxyDataPlane({ logger, listenAddress: HOST });
    cleanups.push(() => dp.close());
    const other = { ...t, vip: { ...t.vip, address: '198.51.100.9' } };
    const err = await dp.apply([t, other]).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'VIP_INVALID' });
    expect((err as Error).message).toContain(`198.51.100.1:${port}/tcp`);
    expect((err as Error).message).toContain(`198.51.100.9:${port}/tcp`);
    expect(await connectOutcome(port)).toBe('ECONNREFUSED');
  });

  test.each([
    ['flowTableSize', { flowTableSize: 0 }, '0'],
    ['flowTableSize', { flowTableSize: Number.NaN }, 'NaN'],
    ['flowTableSize', { flowTableSize: 1.5 }, '1.5'],
    ['flowTimeoutUdpS', { flowTimeoutUdpS: 0 }, '0'],
    ['flowTimeoutUdpS', { flowTimeoutUdpS: -1 }, '-1'],
    ['connectTimeoutMs', { connectTimeoutMs: 0 }, '0'],
    ['connectTimeoutMs', { connectTimeoutMs: Number.POSITIVE_INFINITY }, 'Infinity'],
  ])('proxy driver - option %s %o is refused, naming the field and the value', (field, o, shown) => {
    let err: unknown;
    try {
      createProxyDataPlane({ logger, ...o });
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: 'OPTIONS_INVALID' });
    expect((err as Error).message).toContain(`${field}: ${shown}`);
  });

  test('proxy driver - verify does nothing before an apply; after one, it keeps the listeners and open connections', async () => {
    const t = await table('tcp', await member());
    const dp = createProxyDataPlane({ logger });
    cleanups.push(() => dp.close());
    expect(await dp.verify()).toMatchObject({ vips: [], transactions: 0 });
    await dp.apply([t]);
    expect(await connectOutcome(t.vip.port)).toBe('connected');
    const r = await dp.verify();
    expect(r.transactions).toBe(0);
    expect(r.vips.map((v) => v.action)).toEqual(['unchanged']);
    expect(await connectOutcome(t.vip.port)).toBe('connected');
    await dp.close();
    await expect(dp.verify()).rejects.toMatchObject({ code: 'CLOSED' });
  });

  test('proxy driver - backend counters keep only the members of running or draining VIPs', async () => {
    const [p1, p2] = [await member(), await member()];
    const t = await table('udp', p1);
    const dp = createProxyDataPlane({ logger });
    cleanups.push(() => dp.close());
    await dp.apply([t]);
    const client = dgram.createSocket('udp4');
    cleanups.push(() => client.close());
    await new Promise<void>((r) => client.bind(0, HOST, r));
    const reply = new Promise<void>((r) => client.once('message', () => r()));
    client.send('hello', t.vip.port, HOST);
    await reply;
    expect((await dp.counters()).backends).toEqual([{ address: HOST, packets: 1, bytes: 5 }]);
    // The member moves to another address: the old address's counter goes (here both are loopback, so move the VIP).
    const moved = await table('udp', p2, { backends: [{ name: 'm1', address: '127.0.0.2', port: p2 }] });
    await dp.apply([{ ...moved, slots: buildTable(moved.backends, 251) }]);
    expect((await dp.counters()).backends).toEqual([]);
    await dp.apply([]);
    expect((await dp.counters()).backends).toEqual([]);
  });

  test.each([
    ['127.0.0.1', '2001:db8::10'],
    ['0.0.0.0', '2001:db8::10'],
    ['::1', '198.51.100.10'],
  ])(
    'proxy driver - listenAddress %s can never serve the VIP %s: the apply is refused, naming both',
    async (bind, vip) => {
      const port = await freePort();
      const six = net.isIPv6(vip);
      const backends = [{ name: 'm0', address: six ? '::1' : HOST, port: 9 }];
      const t: VipTable = {
        vip: { address: vip, port, protocol: 'tcp' },
        hash: '5-tuple',
        seed: 1,
        backends,
        slots: buildTable(backends, 251),
        forwarding: 'nat',
      };
      const dp = createProxyDataPlane({ logger, listenAddress: bind });
      cleanups.push(() => dp.close());
      const err = await dp.apply([t]).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'VIP_INVALID' });
      expect((err as Error).message).toContain(`listenAddress ${bind}`);
      expect((err as Error).message).toContain(vip);
      expect((await dp.counters()).vips).toEqual([]);
    },
  );

  test('proxy driver - on a dual-stack listenAddress, a TCP client of the other family than the VIP is reset and counted as no-backend; close() completes', async () => {
    for (const [vip, memberHost, good, bad] of [
      ['198.51.100.10', HOST, HOST, '::1'],
      ['2001:db8::10', '::1', '::1', HOST],
    ] as const) {
      const port = await freePort();
      const backends = [{ name: 'm0', address: memberHost, port: await member(memberHost) }];
      const dp = createProxyDataPlane({ logger, listenAddress: '::' });
      cleanups.push(() => dp.close());
      await dp.apply([
        {
          vip: { address: vip, port, protocol: 'tcp' },
          hash: '5-tuple',
          seed: 1,
          backends,
          slots: buildTable(backends, 251),
          forwarding: 'nat',
        },
      ]);
      // Before the fix the hash threw FLOW_FAMILY_MISMATCH in the connection listener: an uncaught exception.
      expect(await echoOutcome(port, bad)).toBe('ECONNRESET');
      expect(await echoOutcome(port, good)).toBe('ping');
      const c = await dp.counters();
      expect(c.drops['no-backend'].packets).toBe(1);
      expect(c.vips[0]?.packets).toBe(1);
      await dp.close();
    }
  });

  test('proxy driver - on a dual-stack listenAddress, a UDP datagram of the other family than the VIP is dropped and counted as no-backend', async () => {
    const port = await freePort();
    const backends = [{ name: 'm0', address: HOST, port: await member() }];
    const dp = createProxyDataPlane({ logger, listenAddress: '::' });
    cleanups.push(() => dp.close());
    await dp.apply([
      {
        vip: { address: '198.51.100.10', port, protocol: 'udp' },
        hash: '5-tuple',
        seed: 1,
        backends,
        slots: buildTable(backends, 251),
        forwarding: 'nat',
      },
    ]);
    const six = dgram.createSocket('udp6');
    cleanups.push(() => six.close());
    six.send('other family', port, '::1');
    const four = dgram.createSocket('udp4');
    cleanups.push(() => four.close());
    const reply = new Promise<string>((r) => four.once('message', (m) => r(m.toString())));
    four.send('hello', port, HOST);
    // The IPv6 datagram was sent first; the IPv4 one's echo comes after it was handled (one socket, in order).
    expect(await reply).toBe('hello');
    const c = await dp.counters();
    expect(c.drops['no-backend']).toEqual({ packets: 1, bytes: 12 });
    expect(c.flowTable.entries).toBe(1);
  });
});
