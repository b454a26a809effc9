/**
 * The speaker's connected loop over a stubbed gobgpd client: the resync every resyncIntervalMs (docs/design/0003)
 * against wall-clock steps (NTP). vi.setSystemTime moves Date only; the faked timers and performance.now() go on as
 * a steady clock does.
 */
import { pino } from 'pino';
import { afterEach, describe, expect, test, vi } from 'vitest';

const calls = vi.hoisted(() => ({ getGlobal: 0, ping: 0 }));

vi.mock('./gobgp-client.js', () => ({
  /** A gobgpd that answers at once and was never given a global config: a resync is one getGlobal. */
  GobgpClient: class {
    readonly address = '127.0.0.1:50051';
    async waitForReady(): Promise<void> {}
    async ping(): Promise<void> {
      calls.ping++;
    }
    async getGlobal() {
      calls.getGlobal++;
      return { asn: 0, routerId: '', listenPort: 0 };
    }
    async listPeers() {
      return [];
    }
    watchPeers() {
      return { ended: new Promise(() => undefined), cancel: () => undefined };
    }
    close(): void {}
  },
}));

const { createGobgpSpeaker } = await import('./gobgp-speaker.js');

afterEach(() => {
  vi.useRealTimers();
});

describe('gobgp speaker - resync on a steady clock', () => {
  test('a wall clock stepped back an hour does not stop the resync for an hour', async () => {
    vi.useFakeTimers();
    const speaker = createGobgpSpeaker({
      address: '127.0.0.1:50051',
      logger: pino({ level: 'silent' }),
      resyncIntervalMs: 10_000,
    });
    try {
      await vi.advanceTimersByTimeAsync(0);
      expect(speaker.connected).toBe(true);
      const atConnect = calls.getGlobal;
      await vi.advanceTimersByTimeAsync(30_000);
      expect(calls.getGlobal - atConnect).toBe(3);
      const beforeStep = calls.getGlobal;
      vi.setSystemTime(Date.now() - 3_600_000);
      await vi.advanceTimersByTimeAsync(5 * 60_000);
      // 30 intervals of 10 s; one fewer if the last lands exactly at the end.
      expect(calls.getGlobal - beforeStep).toBeGreaterThanOrEqual(29);
    } finally {
      await speaker.close();
    }
  });
});
