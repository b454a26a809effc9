/**
 * killAll's bound against wall-clock steps (NTP): vi.setSystemTime moves Date only, the faked timers and
 * performance.now() go on as a steady clock does. And what each kill(2) error means: only ESRCH is "gone"; EPERM is
 * a process that runs as another user (kill(2)), so a caller must not take it for one that ended.
 */
import { afterEach, describe, expect, test, vi } from 'vitest';
import { ProcessError } from './errors.js';
import { isAlive, killAll, signal } from './pids.js';

afterEach(() => {
  vi.restoreAllMocks();
  vi.useRealTimers();
});

/** What process.kill throws for `code` (as Node's uv errors do: code, errno, syscall). */
function killError(code: 'ESRCH' | 'EPERM'): NodeJS.ErrnoException {
  return Object.assign(new Error(`kill ${code}`), { code, errno: code === 'ESRCH' ? -3 : -1, syscall: 'kill' });
}

function killThrows(code: 'ESRCH' | 'EPERM'): void {
  vi.spyOn(process, 'kill').mockImplementation(() => {
    throw killError(code);
  });
}

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

  test('a pid that outlives SIGKILL past the timeout is returned, not taken for gone', async () => {
    vi.spyOn(process, 'kill').mockImplementation(() => true);
    vi.useFakeTimers();
    const waiting = killAll([process.pid], 5_000);
    await vi.advanceTimersByTimeAsync(6_000);
    expect(await waiting).toEqual([process.pid]);
  });

  test('pids already gone (ESRCH) are no survivors', async () => {
    killThrows('ESRCH');
    expect(await killAll([process.pid, process.ppid], 5_000)).toEqual([]);
  });

  test('a pid that may not be signalled (EPERM: it runs as another user) is a survivor at once', async () => {
    killThrows('EPERM');
    vi.useFakeTimers();
    // Not waited for: no signal reached it, so it cannot end for this call.
    expect(await killAll([process.pid], 5_000)).toEqual([process.pid]);
  });

  test('a pid that is not a process id is refused before anything is signalled (kill(0) is the process group)', async () => {
    const kill = vi.spyOn(process, 'kill').mockImplementation(() => true);
    await expect(killAll([process.pid, 0])).rejects.toThrow(/pid 0 is not a process id/);
    expect(kill).not.toHaveBeenCalled();
  });
});

describe('process - signal and isAlive', () => {
  test('signal: a pid already gone (ESRCH) is not an error', () => {
    killThrows('ESRCH');
    expect(() => signal(process.pid, 'SIGTERM')).not.toThrow();
  });

  test('signal: EPERM is not "gone": a ProcessError SIGNAL_FAILED names the pid, the signal and the error', () => {
    killThrows('EPERM');
    let err: unknown;
    try {
      signal(4242, 'SIGTERM');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ProcessError);
    expect(err).toMatchObject({ code: 'SIGNAL_FAILED', message: expect.stringMatching(/SIGTERM.*pid 4242.*EPERM/) });
    expect((err as ProcessError).cause).toMatchObject({ code: 'EPERM' });
  });

  test('isAlive: ESRCH is gone, EPERM is a process that runs (another user owns it)', () => {
    killThrows('ESRCH');
    expect(isAlive(process.pid)).toBe(false);
    vi.restoreAllMocks();
    killThrows('EPERM');
    // This process's /proc entry says it is no zombie.
    expect(isAlive(process.pid)).toBe(true);
  });

  test.each([0, -1, 1.5, Number.NaN])('pid %s is refused: kill(2) would signal a process group, or nothing', (pid) => {
    const kill = vi.spyOn(process, 'kill').mockImplementation(() => true);
    expect(() => signal(pid, 'SIGKILL')).toThrow(ProcessError);
    expect(() => isAlive(pid)).toThrow(ProcessError);
    expect(kill).not.toHaveBeenCalled();
  });
});
