/**
 * Loopback helpers of the proxy driver's tests (proxy.test.ts, proxy-source-ranges.test.ts): named backends,
 * VIP tables over them, and TCP / UDP clients that ask a backend for its name.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import type { VipTable } from '@l4fleet/dataplane';
import { buildTable, type HashMode, type Protocol } from '@l4fleet/maglev';

export const SEED = 0x5eed_1234;

export interface NamedServer {
  readonly name: string;
  readonly port: number;
  /** What reached this backend: accepted TCP connections and UDP datagrams. */
  readonly seen: { readonly connections: number; readonly datagrams: number };
  close(): void;
}

/** A backend answering each TCP line or UDP datagram with its name, on one port for both protocols. */
export async function nameServer(name: string, host = '127.0.0.1'): Promise<NamedServer> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const seen = { connections: 0, datagrams: 0 };
    const tcp = net.createServer((c) => {
      seen.connections++;
      c.on('data', () => c.write(`${name}\n`));
      // The proxy resets connections (pool change, refused source): an unhandled ECONNRESET would fail the run.
      c.on('error', () => undefined);
    });
    await new Promise<void>((r) => tcp.listen(0, host, r));
    const port = (tcp.address() as net.AddressInfo).port;
    const udp = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
    const ok = await new Promise<boolean>((r) => {
      udp.once('error', () => r(false));
      udp.bind(port, host, () => r(true));
    });
    if (!ok) {
      tcp.close();
      continue;
    }
    udp.on('error', () => undefined);
    udp.on('message', (_m, rinfo) => {
      seen.datagrams++;
      udp.send(`${name}\n`, rinfo.port, rinfo.address);
    });
    return {
      name,
      port,
      seen,
      close: () => {
        tcp.close();
        udp.close();
      },
    };
  }
  throw new Error('no free port pair');
}

/** One implementation for every test: outside the ephemeral range, never the same port twice (packages/process). */
export { freePort } from '@l4fleet/process';

export function table(
  servers: readonly NamedServer[],
  vip: { address: string; port: number; protocol: Protocol },
  hash: HashMode = '5-tuple',
  host = '127.0.0.1',
): VipTable {
  const backends = servers.map((s) => ({ name: s.name, address: host, port: s.port }));
  return { vip, hash, seed: SEED, backends, slots: buildTable(backends, 65_537) };
}

/** How a client's connection ended: reset by the peer (ECONNRESET) or closed another way. */
export type ClosedBy = 'reset' | 'closed';

/** Resolves when `sock` closes, saying how; installs the socket's error handler (errors are the test's to judge). */
export function closedBy(sock: net.Socket): Promise<ClosedBy> {
  let reset = false;
  sock.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'ECONNRESET') reset = true;
  });
  return new Promise((r) => sock.once('close', () => r(reset ? 'reset' : 'closed')));
}

/** A TCP connection that asks for the backend's name on demand. */
export async function connect(
  host: string,
  port: number,
  localAddress?: string,
): Promise<{ sport: number; ask(): Promise<string>; close(): void; closed: Promise<ClosedBy> }> {
  const sock = net.connect({ host, port, ...(localAddress ? { localAddress } : {}) });
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  });
  const closed = closedBy(sock);
  return {
    sport: sock.localPort as number,
    closed,
    ask: () =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no reply')), 3000);
        sock.once('data', (d) => {
          clearTimeout(timer);
          resolve(d.toString().trim());
        });
        sock.write('x\n');
      }),
    close: () => sock.destroy(),
  };
}

export async function udpAsk(sock: dgram.Socket, host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no udp reply')), 3000);
    sock.once('message', (m) => {
      clearTimeout(timer);
      resolve(m.toString().trim());
    });
    sock.send('x', port, host);
  });
}
