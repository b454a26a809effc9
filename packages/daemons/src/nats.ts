/**
 * nats-server (Debian's /usr/sbin/nats-server): its command line, and a server of our own for tests (a free
 * loopback port, core pub/sub: the agent's events need no JetStream). kill()/start() simulate an outage on the
 * same port.
 */
import { type Child, canConnect, freePort, spawnChild, waitFor } from '@l4fleet/process';
import { DaemonError } from './errors.js';

export const NATS_SERVER_BIN = '/usr/sbin/nats-server';
const READY_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 3_000;

export interface NatsArgvOptions {
  readonly address: string;
  readonly port: number;
  /** JetStream on, its store in this directory; absent: core NATS only. */
  readonly jetStreamDir?: string;
}

export function natsArgv(o: NatsArgvOptions): string[] {
  const js = o.jetStreamDir ? ['-js', '-sd', o.jetStreamDir] : [];
  return [NATS_SERVER_BIN, '-a', o.address, '-p', String(o.port), ...js];
}

export interface NatsHandle {
  /** `nats://127.0.0.1:PORT`. */
  readonly url: string;
  readonly port: number;
  /** SIGKILL (an outage); start() brings it back on the same port (after stop(): STOPPED). */
  kill(): Promise<void>;
  start(): Promise<void>;
  /** Stops for good; safe to call twice. */
  stop(): Promise<void>;
}

export async function startNats(): Promise<NatsHandle> {
  const port = await freePort();
  let child: Child | undefined;
  let stopped = false;

  const start = async (): Promise<void> => {
    const c = spawnChild(natsArgv({ address: '127.0.0.1', port }));
    child = c;
    try {
      await waitFor(
        `nats-server on port ${port}`,
        async () => ((await canConnect(port)) ? true : undefined),
        READY_TIMEOUT_MS,
        50,
        () => (c.exitReason() ? `nats-server ${c.exitReason()} before serving:\n${c.log()}` : undefined),
      );
    } catch (err) {
      // One that never served is not left running, nor kept as `child`: start() then launches again.
      if (child === c) child = undefined;
      await c.stop('SIGKILL');
      throw err;
    }
  };

  await start();
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    async kill() {
      const c = child;
      child = undefined;
      await c?.stop('SIGKILL');
    },
    async start() {
      if (stopped) throw new DaemonError('STOPPED', `nats-server nats://127.0.0.1:${port}: stopped`);
      if (!child) await start();
    },
    async stop() {
      stopped = true;
      const c = child;
      child = undefined;
      await c?.stop('SIGTERM', STOP_TIMEOUT_MS);
    },
  };
}
