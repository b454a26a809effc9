/** Loopback TCP ports for daemons started by tests and benches. */
import { readFileSync } from 'node:fs';
import { createServer, Socket } from 'node:net';

/**
 * Lowest port freePort hands out. A port the kernel picks for port 0 lies in net.ipv4.ip_local_port_range
 * (32768-60999 by default), the range every outgoing connection takes its source port from: between the probe's
 * close and the daemon's bind any connection on the machine could take it (seen in CI: etcd's "bind: address
 * already in use"). Below that range only another listener can.
 */
export const FREE_PORT_LOWEST = 20_000;
/** Random ports tried below the ephemeral range before falling back to one the kernel picks. */
const FREE_PORT_TRIES = 64;

/** The first port of the kernel's ephemeral range (ip_local_port_range); 32768 when it cannot be read. */
export function ephemeralPortLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > 0 && low <= 65_535 ? low : 32_768;
  } catch {
    return 32_768;
  }
}

/** Listens on `port` (0: one the kernel picks) on `host`, closes, and gives the port; undefined when it is taken. */
function probe(port: number, host: string): Promise<number | undefined> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', (err: NodeJS.ErrnoException) =>
      port !== 0 && (err.code === 'EADDRINUSE' || err.code === 'EACCES') ? resolve(undefined) : reject(err),
    );
    server.listen(port, host, () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error(`no free port on ${host}`)),
      );
    });
  });
}

/**
 * A TCP port free on `host` right now: a random one between FREE_PORT_LOWEST and the kernel's ephemeral range
 * (which no outgoing connection takes meanwhile), or, when that gap is small or full, one the kernel picks.
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const high = ephemeralPortLow() - 1;
  if (high - FREE_PORT_LOWEST >= 1_000) {
    for (let i = 0; i < FREE_PORT_TRIES; i++) {
      const port = await probe(FREE_PORT_LOWEST + Math.floor(Math.random() * (high - FREE_PORT_LOWEST + 1)), host);
      if (port !== undefined) return port;
    }
  }
  const port = await probe(0, host);
  if (port === undefined) throw new Error(`no free port on ${host}`);
  return port;
}

/** Whether something accepts a TCP connection on 127.0.0.1:`target` (a port) or a unix socket path; 500 ms at most. */
export function canConnect(target: number | string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    socket.setTimeout(500);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
    if (typeof target === 'string') socket.connect(target);
    else socket.connect(target, '127.0.0.1');
  });
}
