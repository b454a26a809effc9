/** Loopback TCP ports for daemons started by tests and benches. */
import { createServer, Socket } from 'node:net';

/** A TCP port free on `host` right now (listen on port 0, read it back, close). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error(`no free port on ${host}`)),
      );
    });
  });
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
