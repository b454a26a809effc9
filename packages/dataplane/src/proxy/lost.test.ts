/** The proxy driver on loopback (127.0.0.1 only): listeners lost under the driver and repaired. */
import dgram from 'node:dgram';
import { once } from 'node:events';
import net from 'node:net';
import { buildTable } from '@l4fleet/maglev';
import { pino } from 'pino';
import { afterEach, describe, expect, test } from 'vitest';
import type { VipTable } from '../types.js';
import { createProxyDataPlane } from './driver.js';
import { cleanups, connectOutcome, echoOutcome, HOST, logger, member, table } from './driver.test-helper.js';
import { nodeSockets, type ProxySockets } from './sockets.js';

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
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

  test('proxy driver - an apply of a table change that reopens a lost listener reports it as repaired (the agent counts it as drift)', async () => {
    const t = await table('tcp', await member());
    const sockets = keptSockets();
    const dp = createProxyDataPlane({ logger, sockets });
    cleanups.push(() => dp.close());
    expect((await dp.apply([t])).repaired ?? []).toEqual([]);
    sockets.tcp[0]?.close();
    // A routine table change (another VIP) comes before the next verify: the apply reopens the lost listener.
    const other = await table('tcp', await member());
    const r = await dp.apply([t, other]);
    expect(r.repaired).toEqual([`${HOST}:${t.vip.port}/tcp`]);
    expect(r.transactions).toBe(2);
    expect(await echoOutcome(t.vip.port, HOST)).toBe('ping');
    // Reopened once: the next apply and verify find nothing lost.
    expect((await dp.apply([t])).repaired ?? []).toEqual([]);
    expect(await dp.verify()).toMatchObject({ transactions: 0, repaired: [] });
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

  test('proxy driver - a lost listener that cannot listen again fails apply and verify naming its VIP, yet every other change is made: the other VIPs and its own table', async () => {
    const m0 = await member();
    const a = await table('tcp', m0);
    const b = await table('tcp', m0);
    // m1 names itself: a client through a VIP sees which member its table chose.
    const m1 = net.createServer((c) => c.end('m1'));
    await new Promise<void>((r) => m1.listen(0, HOST, r));
    cleanups.push(() => m1.close());
    const m1Backends = [{ name: 'm1', address: HOST, port: (m1.address() as net.AddressInfo).port }];
    const toM1 = (t: VipTable): VipTable => ({ ...t, backends: m1Backends, slots: buildTable(m1Backends, 251) });
    const sockets = keptSockets();
    const lines: Record<string, unknown>[] = [];
    const captured = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
    const dp = createProxyDataPlane({ logger: captured, sockets });
    cleanups.push(() => dp.close());
    await dp.apply([a, b]);
    expect(await echoOutcome(b.vip.port, HOST)).toBe('ping');
    // A's listener is lost and another process takes its port.
    sockets.tcp[0]?.close();
    const squatter = net.createServer((c) => c.destroy());
    await new Promise<void>((resolve, reject) => {
      squatter.once('error', reject);
      squatter.listen(a.vip.port, HOST, resolve);
    });
    cleanups.push(() => squatter.close());
    const err = await dp.apply([toM1(a), toM1(b)]).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'LISTEN_FAILED', cause: expect.objectContaining({ code: 'EADDRINUSE' }) });
    expect((err as Error).message).toContain(`vip ${HOST}:${a.vip.port}/tcp`);
    expect((err as Error).message).not.toContain(`vip ${HOST}:${b.vip.port}/tcp`);
    // Its log line says the apply failed too: not a clean 'applied' before the agent's failure.
    expect(lines.filter((l) => l.event === 'applied').at(-1)).toMatchObject({
      level: 40,
      listenFailed: expect.stringContaining(`${a.vip.port}`),
    });
    // B's table changed all the same: its clients reach m1.
    expect(await echoOutcome(b.vip.port, HOST)).toBe('m1');
    // verify re-applies that state: it fails for A again, B stays as it is.
    const verr = await dp.verify().catch((e: unknown) => e);
    expect(verr).toMatchObject({ code: 'LISTEN_FAILED' });
    expect((verr as Error).message).toContain(`vip ${HOST}:${a.vip.port}/tcp`);
    expect(await echoOutcome(b.vip.port, HOST)).toBe('m1');
    // Once the port is free, verify opens A again, with the table of the failed apply.
    await new Promise<void>((r) => squatter.close(() => r()));
    const r = await dp.verify();
    expect(r.transactions).toBe(1);
    expect(r.vips).toEqual([
      expect.objectContaining({ vip: `${HOST}:${a.vip.port}/tcp`, action: 'updated' }),
      expect.objectContaining({ vip: `${HOST}:${b.vip.port}/tcp`, action: 'unchanged' }),
    ]);
    expect(await echoOutcome(a.vip.port, HOST)).toBe('m1');
  });

  test('proxy driver - an apply (or verify) failing on one lost listener still reports the others it reopened, on its error: repaired, counted once', async () => {
    const m0 = await member();
    const a = await table('tcp', m0);
    const b = await table('tcp', m0);
    const sockets = keptSockets();
    const dp = createProxyDataPlane({ logger, sockets });
    cleanups.push(() => dp.close());
    await dp.apply([a, b]);
    // Both listeners are lost; another process takes B's port.
    for (const s of sockets.tcp) s.close();
    const squatter = net.createServer((c) => c.destroy());
    await new Promise<void>((resolve, reject) => {
      squatter.once('error', reject);
      squatter.listen(b.vip.port, HOST, resolve);
    });
    cleanups.push(() => squatter.close());
    const err = await dp.apply([a, b]).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'LISTEN_FAILED', repaired: [`${HOST}:${a.vip.port}/tcp`] });
    expect((err as Error).message).toContain(`vip ${HOST}:${b.vip.port}/tcp`);
    expect(await echoOutcome(a.vip.port, HOST)).toBe('ping');
    // A verify failing on B the same way reopened nothing more: its error says none.
    const verr = await dp.verify().catch((e: unknown) => e);
    expect(verr).toMatchObject({ code: 'LISTEN_FAILED', repaired: [] });
    // Once B's port is free, the next apply reopens B only: A's repair was reported once, by the failed apply.
    await new Promise<void>((r) => squatter.close(() => r()));
    expect((await dp.apply([a, b])).repaired).toEqual([`${HOST}:${b.vip.port}/tcp`]);
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

  test('proxy driver - an error a UDP socket emits after its bind is logged as listenerError, not thrown; the socket still bound needs no repair', async () => {
    const t = await table('udp', await member());
    const sockets = keptSockets();
    const lines: Record<string, unknown>[] = [];
    const captured = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
    const dp = createProxyDataPlane({ logger: captured, sockets });
    cleanups.push(() => dp.close());
    await dp.apply([t]);
    // What node emits when a send fails (EPERM from a firewall): the socket stays bound. Without a listener: thrown.
    expect(() =>
      sockets.udp[0]?.emit('error', Object.assign(new Error('send EPERM'), { code: 'EPERM' })),
    ).not.toThrow();
    expect(lines.filter((l) => l.event === 'listenerError')).toEqual([
      expect.objectContaining({ level: 40, port: t.vip.port, code: 'EPERM' }),
    ]);
    expect(await dp.verify()).toMatchObject({ transactions: 0 });
    const client = dgram.createSocket('udp4');
    cleanups.push(() => client.close());
    await new Promise<void>((r) => client.bind(0, HOST, r));
    expect(await udpEcho(client, t.vip.port, 'still')).toBe('still');
  });
});
