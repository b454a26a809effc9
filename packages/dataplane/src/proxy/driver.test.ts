/** The proxy driver on loopback (127.0.0.1 only): removing VIPs while flows are open, shared listeners, counters. */
import dgram from 'node:dgram';
import net from 'node:net';
import { buildTable } from '@l4fleet/maglev';
import { freePort } from '@l4fleet/process';
import { afterEach, describe, expect, test } from 'vitest';
import type { VipTable } from '../types.js';
import { createProxyDataPlane } from './driver.js';
import { cleanups, connectOutcome, echoOutcome, HOST, logger, member, table } from './driver.test-helper.js';

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
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
