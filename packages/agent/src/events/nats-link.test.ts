import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeCerts } from '@l4fleet/daemons';
import pino from 'pino';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { createManualClock } from '../clock.js';
import type { NatsSection } from '../config/types.js';
import { AgentError } from '../errors.js';
import { createNatsLink, type NatsLink } from './nats-link.js';

/** An async iterable the test feeds: push values, end it, or end it with an error (as nats.js QueuedIterator.stop). */
function feed<T>() {
  const queue: T[] = [];
  let done = false;
  let failure: Error | undefined;
  let wake: (() => void) | undefined;
  const poke = () => {
    wake?.();
    wake = undefined;
  };
  return {
    push(v: T) {
      queue.push(v);
      poke();
    },
    end(err?: Error) {
      done = true;
      failure = err;
      poke();
    },
    async *[Symbol.asyncIterator](): AsyncGenerator<T> {
      for (;;) {
        const v = queue.shift();
        if (v !== undefined) {
          yield v;
          continue;
        }
        if (failure) throw failure;
        if (done) return;
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
      }
    },
  };
}

interface FakeConn {
  subs: { subject: string; messages: ReturnType<typeof feed<{ data: Uint8Array }>> }[];
  status: ReturnType<typeof feed<{ type: string }>>;
  /** nats.js closing the connection for good (closed() resolves). */
  closeForGood(err?: Error): void;
  closedByUs: boolean;
}

const nats = vi.hoisted(() => ({
  conns: [] as FakeConn[],
  /** Attempts connect() refuses before it hands out a connection. */
  refuse: 0,
  calls: 0,
  /** The tls option of each connect() call. */
  tls: [] as unknown[],
}));

vi.mock('nats', () => ({
  Events: { Disconnect: 'disconnect', Reconnect: 'reconnect' },
  connect: async (opts: { tls?: unknown }) => {
    nats.calls += 1;
    nats.tls.push(opts.tls);
    if (nats.refuse > 0) {
      nats.refuse -= 1;
      throw new Error('Authorization Violation');
    }
    let resolveClosed: (v: Error | undefined) => void = () => undefined;
    const closed = new Promise<Error | undefined>((r) => {
      resolveClosed = r;
    });
    let isClosed = false;
    const c: FakeConn = {
      subs: [],
      status: feed(),
      closedByUs: false,
      closeForGood(err) {
        isClosed = true;
        for (const s of c.subs) s.messages.end();
        c.status.end();
        resolveClosed(err);
      },
    };
    nats.conns.push(c);
    return {
      subscribe(subject: string) {
        const messages = feed<{ data: Uint8Array }>();
        c.subs.push({ subject, messages });
        return messages;
      },
      status: () => c.status,
      closed: () => closed,
      isClosed: () => isClosed,
      publish: () => undefined,
      async close() {
        c.closedByUs = true;
        c.closeForGood();
      },
    };
  },
}));

const config: NatsSection = {
  servers: ['nats://127.0.0.1:4222'],
  subjectPrefix: 'l4fleet',
  maxPendingEvents: 10,
};

function capture() {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, { write: (l: string) => lines.push(JSON.parse(l)) });
  return { logger, events: () => lines.map((l) => l.event), lines };
}

let link: NatsLink | undefined;
afterEach(async () => {
  await link?.close();
  link = undefined;
  nats.conns.length = 0;
  nats.refuse = 0;
  nats.calls = 0;
  nats.tls.length = 0;
});

const SUBJECT = 'l4fleet.f.member.health.>';

describe('nats link - subscriptions', () => {
  test('a subscription ended with an error (permissions violation) is logged and re-attached on reconnect', async () => {
    const clock = createManualClock();
    const log = capture();
    const got: string[] = [];
    link = createNatsLink({ config, name: 'n1', logger: log.logger, clock });
    link.subscribe(SUBJECT, (d) => got.push(new TextDecoder().decode(d)));
    await clock.advance(0);
    const conn = nats.conns[0];
    expect(conn?.subs.map((s) => s.subject)).toEqual([SUBJECT]);
    conn?.subs[0]?.messages.push({ data: new TextEncoder().encode('a') });
    await clock.advance(0);
    expect(got).toEqual(['a']);

    conn?.subs[0]?.messages.end(new Error(`Permissions Violation for Subscription to "${SUBJECT}"`));
    await clock.advance(0);
    const failed = log.lines.find((l) => l.event === 'natsSubscriptionFailed');
    expect(failed).toMatchObject({ subject: SUBJECT });
    expect(JSON.stringify(failed?.err)).toContain('Permissions Violation');

    // The server's permissions may have changed by the next reconnect: the subscription is made again.
    conn?.status.push({ type: 'disconnect' });
    conn?.status.push({ type: 'reconnect' });
    await clock.advance(0);
    expect(conn?.subs.map((s) => s.subject)).toEqual([SUBJECT, SUBJECT]);
    conn?.subs[1]?.messages.push({ data: new TextEncoder().encode('b') });
    await clock.advance(0);
    expect(got).toEqual(['a', 'b']);
  });
});

describe('nats link - connection closed for good', () => {
  test('when nats.js gives up on the connection, the link connects again and re-attaches its subscriptions', async () => {
    const clock = createManualClock();
    const log = capture();
    const changes: boolean[] = [];
    link = createNatsLink({
      config,
      name: 'n1',
      logger: log.logger,
      clock,
      onConnectionChange: (c) => changes.push(c),
    });
    link.subscribe(SUBJECT, () => undefined);
    await clock.advance(0);
    expect(link.isConnected()).toBe(true);

    // e.g. an authorization error repeated while reconnecting: nats.js closes the connection.
    nats.refuse = 2;
    nats.conns[0]?.closeForGood(new Error('Authorization Violation'));
    await clock.advance(0);
    expect(link.isConnected()).toBe(false);
    expect(log.events()).toContain('natsClosed');

    await clock.advance(10_000);
    expect(nats.calls).toBe(4); // the first connection, two refused, the one that worked
    expect(link.isConnected()).toBe(true);
    expect(changes).toEqual([true, false, true]);
    expect(nats.conns[1]?.subs.map((s) => s.subject)).toEqual([SUBJECT]);
  });

  test('close() stops the link: no connect after it, even while one was scheduled', async () => {
    const clock = createManualClock();
    link = createNatsLink({ config, name: 'n1', logger: capture().logger, clock });
    await clock.advance(0);
    nats.conns[0]?.closeForGood(new Error('gone'));
    await clock.advance(0);
    await link.close();
    link = undefined;
    await clock.advance(10_000);
    expect(nats.calls).toBe(1);
    expect(clock.pending).toBe(0);
  });
});

describe('nats link - logs', () => {
  // The config refuses a server URL with userinfo; a link made otherwise still never logs its password.
  test('natsConnectFailed names the servers with any userinfo masked', async () => {
    const clock = createManualClock();
    const log = capture();
    nats.refuse = 1;
    const servers = ['nats://agent:N3wS3cret@198.19.0.2:4222', 'tls://N3wS3cret@198.19.0.3:4222'];
    link = createNatsLink({ config: { ...config, servers }, name: 'n1', logger: log.logger, clock });
    await clock.advance(0);
    const failed = log.lines.find((l) => l.event === 'natsConnectFailed');
    expect(failed?.servers).toEqual(['nats://***@198.19.0.2:4222', 'tls://***@198.19.0.3:4222']);
    expect(JSON.stringify(log.lines)).not.toContain('N3wS3cret');
  });
});

// The link read nats.tls with a blocking readFileSync on every connect attempt: a FIFO held the event loop for good
// (leases, probes, /metrics, SIGTERM), and a file deleted since failed every fresh connect.
describe('nats link - TLS files', () => {
  let dir: string;
  let writer: ChildProcess | undefined;
  afterEach(async () => {
    try {
      // timeout leads a process group of its own: the sh blocked opening the FIFO goes with it.
      if (writer?.pid !== undefined) process.kill(-writer.pid, 'SIGKILL');
    } catch {
      // already gone
    }
    writer = undefined;
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('a FIFO as nats.tls.ca is refused at creation, never read, and nothing connects', async () => {
    dir = await mkdtemp(join(tmpdir(), 'l4fleet-nats-tls-'));
    const fifo = join(dir, 'ca.fifo');
    execFileSync('mkfifo', [fifo]);
    // Should the read block, this writer ends each wait after 1 s, so the test fails instead of hanging; the manual
    // clock never fires the retry that would read it again.
    writer = spawn('timeout', ['10', 'sh', '-c', `for i in 1 2 3; do sleep 1; echo x > '${fifo}'; done`], {
      stdio: 'ignore',
    });
    const clock = createManualClock();
    let err: unknown;
    try {
      link = createNatsLink({ config: { ...config, tls: { ca: fifo } }, name: 'n1', logger: capture().logger, clock });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(AgentError);
    expect(err).toMatchObject({ code: 'CONFIG_INVALID', message: `nats.tls.ca: "${fifo}" is not a regular file` });
    await clock.advance(0);
    expect(nats.calls).toBe(0);
  });

  test('the files are read once: a connection made after one was deleted still has its copy', {
    timeout: 30_000,
  }, async () => {
    dir = await mkdtemp(join(tmpdir(), 'l4fleet-nats-tls-'));
    // A real CA: the start refuses a file holding no PEM certificate (tls-files.ts readTlsFile).
    await makeCerts(dir);
    const ca = join(dir, 'ca.pem');
    const pem = await readFile(ca, 'utf8');
    const clock = createManualClock();
    const log = capture();
    link = createNatsLink({ config: { ...config, tls: { ca } }, name: 'n1', logger: log.logger, clock });
    await clock.advance(0);
    expect(link.isConnected()).toBe(true);
    await rm(ca);
    nats.conns[0]?.closeForGood(new Error('Authorization Violation'));
    await clock.advance(10_000);
    expect(link.isConnected()).toBe(true);
    expect(nats.tls).toEqual([{ ca: pem }, { ca: pem }]);
    expect(log.events()).not.toContain('natsConnectFailed');
  });

  test('content handed over (runtime.ts reads it with etcd.tls) is used, the paths not read again', async () => {
    const clock = createManualClock();
    link = createNatsLink({
      config: { ...config, tls: { ca: '/nonexistent/ca.pem', cert: '/nonexistent/c.pem', key: '/nonexistent/c.key' } },
      tls: { ca: Buffer.from('ca'), cert: Buffer.from('cert'), key: Buffer.from('key') },
      name: 'n1',
      logger: capture().logger,
      clock,
    });
    await clock.advance(0);
    expect(nats.tls).toEqual([{ ca: 'ca', cert: 'cert', key: 'key' }]);
  });
});
