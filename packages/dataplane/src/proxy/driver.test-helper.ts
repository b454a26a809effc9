/**
 * The proxy driver's test fixtures on loopback, shared by driver.test.ts and lost.test.ts (test-only: excluded from the
 * build by its `.test-helper.ts` name). Each test file empties `cleanups` in its own afterEach.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { buildTable, type Protocol } from '@l4fleet/maglev';
import { freePort } from '@l4fleet/process';
import { pino } from 'pino';
import type { VipTable } from '../types.js';

export const logger = pino({ level: 'silent' });
export const HOST = '127.0.0.1';
export const cleanups: (() => unknown)[] = [];

/** An echo member on TCP and UDP of one port. */
export async function member(host = HOST): Promise<number> {
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

export async function table(protocol: Protocol, memberPort: number, opts: Partial<VipTable> = {}): Promise<VipTable> {
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

export const connectOutcome = (port: number, host = HOST): Promise<string> =>
  new Promise((resolve) => {
    const s = net.connect({ host, port });
    s.once('connect', () => {
      s.destroy();
      resolve('connected');
    });
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
  });

/** What a client from `host` sees: its echo back, or how the connection ended (ECONNRESET for a refused one). */
export const echoOutcome = (port: number, host: string): Promise<string> =>
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
