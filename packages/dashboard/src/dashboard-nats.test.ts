/** The dashboard's NATS timeline follows with the login it is given (a secured NATS: tls://, a CA, a token). */
import { MemoryFleetStore } from '@l4fleet/store';
import pino from 'pino';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { type Dashboard, startDashboard } from './dashboard.js';

/** followEvents as a recorder that follows until the dashboard closes (nothing is dialled). */
interface Followed {
  servers: readonly string[];
  subject: string;
  auth?: unknown;
  onMessage?: (text: string) => void;
}
const followed = vi.hoisted(() => ({ calls: [] as Followed[] }));
vi.mock('@l4fleet/agent', async (importOriginal) => ({
  ...(await importOriginal<typeof import('@l4fleet/agent')>()),
  followEvents: async (opts: Followed & { signal?: AbortSignal }) => {
    followed.calls.push(opts);
    await new Promise<void>((resolve) => {
      if (opts.signal?.aborted) resolve();
      opts.signal?.addEventListener('abort', () => resolve(), { once: true });
    });
  },
}));

describe('dashboard - NATS login', () => {
  let dash: Dashboard | undefined;
  const store = new MemoryFleetStore();
  afterEach(async () => {
    await dash?.close();
    dash = undefined;
    followed.calls.length = 0;
  });

  test('the events and the flows subjects are followed with the given auth', async () => {
    const auth = { token: 'nats-token-of-the-fleet', ca: '-----BEGIN CERTIFICATE-----\n' };
    dash = await startDashboard({
      store,
      logger: pino({ level: 'silent' }),
      listen: '127.0.0.1:0',
      nats: { servers: ['tls://198.19.0.2:4222'], subject: 'l4fleet.default.>', flowsSubject: 'flows', auth },
    });
    await vi.waitFor(() => expect(followed.calls).toHaveLength(2), { timeout: 5_000 });
    expect(followed.calls.map((c) => [c.subject, c.auth])).toEqual([
      ['l4fleet.default.>', auth],
      ['flows', auth],
    ]);
  });

  test('no auth given: none passed', async () => {
    dash = await startDashboard({
      store,
      logger: pino({ level: 'silent' }),
      listen: '127.0.0.1:0',
      nats: { servers: ['nats://127.0.0.1:4222'], subject: 's' },
    });
    await vi.waitFor(() => expect(followed.calls).toHaveLength(1), { timeout: 5_000 });
    expect(followed.calls[0]?.auth).toBeUndefined();
  });

  test('a publisher of junk: one warning counts the rejections, not one warning per message', async () => {
    const lines: { level: number; event?: string; rejectedSinceWarn?: number }[] = [];
    const sink = { write: (line: string) => lines.push(JSON.parse(line)) };
    dash = await startDashboard({
      store,
      logger: pino({ level: 'debug' }, sink),
      listen: '127.0.0.1:0',
      nats: { servers: ['nats://127.0.0.1:4222'], subject: 's' },
    });
    await vi.waitFor(() => expect(followed.calls).toHaveLength(1), { timeout: 5_000 });
    for (let i = 0; i < 100; i++) followed.calls[0]?.onMessage?.(`junk ${i}`);
    const rejected = lines.filter((l) => l.event === 'eventRejected');
    expect(rejected).toHaveLength(100); // each is logged, at debug past the first
    expect(rejected.filter((l) => l.level >= 40)).toEqual([expect.objectContaining({ rejectedSinceWarn: 0 })]);
  });
});
