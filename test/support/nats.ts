/**
 * A throwaway NATS server for tests: Debian's /usr/sbin/nats-server on a free loopback port (no JetStream: the
 * agent's events are core pub/sub). Always stopped: call stop() in afterAll/afterEach; a process exit hook kills
 * whatever a crashed test left behind. kill()/start() simulate an outage on the same port.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { connect, createServer } from 'node:net';

export interface NatsHandle {
  /** `nats://127.0.0.1:PORT`. */
  readonly url: string;
  readonly port: number;
  /** SIGKILL (an outage); start() brings it back on the same port. */
  kill(): Promise<void>;
  start(): Promise<void>;
  /** Stops for good; safe to call twice. */
  stop(): Promise<void>;
}

const NATS_SERVER = '/usr/sbin/nats-server';
const READY_TIMEOUT_MS = 10_000;
const live = new Set<ChildProcess>();
let hooked = false;

async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

export async function startNats(): Promise<NatsHandle> {
  if (!hooked) {
    hooked = true;
    process.once('exit', () => {
      for (const c of live) c.kill('SIGKILL');
    });
  }
  const port = await freePort();
  let child: ChildProcess | undefined;
  let stopped = false;

  const start = async (): Promise<void> => {
    let log = '';
    const c = spawn(NATS_SERVER, ['-a', '127.0.0.1', '-p', String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
    c.stdout?.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
    c.stderr?.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
    live.add(c);
    c.once('exit', () => live.delete(c));
    child = c;
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      if (c.exitCode !== null || c.signalCode !== null) throw new Error(`nats-server exited before serving:\n${log}`);
      if (await portOpen(port)) return;
      if (Date.now() > deadline) throw new Error(`nats-server did not listen on ${port} within ${READY_TIMEOUT_MS} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  await start();
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    async kill() {
      const c = child;
      child = undefined;
      if (!c) return;
      c.kill('SIGKILL');
      await exited(c);
    },
    async start() {
      if (stopped) throw new Error('nats handle was stopped');
      if (!child) await start();
    },
    async stop() {
      stopped = true;
      const c = child;
      child = undefined;
      if (!c) return;
      c.kill('SIGTERM');
      const t = setTimeout(() => c.kill('SIGKILL'), 3_000);
      await exited(c);
      clearTimeout(t);
    },
  };
}
