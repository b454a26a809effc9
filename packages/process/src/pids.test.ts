/**
 * killAll's bound against wall-clock steps (NTP): vi.setSystemTime moves Date only, the faked timers and
 * performance.now() go on as a steady clock does.
 */
import { afterEach, describe, expect, test, vi } from 'vitest';
import { killAll } from './pids.js';

afterEach(() => {
  vi.restoreAllMocks();
  vi.useRealTimers();
});

describe('process - killAll', () => {
  test('a wall clock stepped back does not stretch the wait for a pid that will not die', async () => {
    // This test's own process stands for one that outlives SIGKILL (in D state): the signals go nowhere.
    vi.spyOn(process, 'kill').mockImplementation(() => true);
    vi.useFakeTimers();
    let done = false;
    const waiting = killAll([process.pid], 5_000).then(() => {
      done = true;
    });
    vi.setSystemTime(Date.now() - 3_600_000);
    await vi.advanceTimersByTimeAsync(6_000);
    expect(done).toBe(true);
    await waiting;
  });
});
