import { describe, expect, test, vi } from 'vitest';
import { ProcessError } from './errors.js';
import { inNamespace, isAlive, run, runScript, signal, spawnChild, waitFor } from './index.js';

describe('process - run', () => {
  test('collects stdout and stderr and feeds stdin', async () => {
    const r = await run(['sh', '-c', 'cat; echo err >&2'], { input: 'hello' });
    expect(r).toEqual({ code: 0, stdout: 'hello', stderr: 'err\n' });
  });

  test('a non-zero exit rejects with COMMAND_FAILED naming the command and what it said', async () => {
    const err = await run(['sh', '-c', 'echo nope >&2; exit 3']).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProcessError);
    expect(err).toMatchObject({
      code: 'COMMAND_FAILED',
      message: 'command "sh -c echo nope >&2; exit 3" exited 3: nope',
    });
  });

  test('allowFailure resolves with the exit code', async () => {
    expect((await runScript('exit 4', { allowFailure: true })).code).toBe(4);
  });

  // The test's own timeout (10 s) is the bound: without the kill, sleep 30 would hold it.
  test('a program that outlives its timeout is killed and rejects with TIMEOUT', { timeout: 10_000 }, async () => {
    await expect(run(['sleep', '30'], { timeoutMs: 100 })).rejects.toMatchObject({ code: 'TIMEOUT' });
  });

  test('a timeout rejects at once while a grandchild still holds the output pipes, with the stderr so far', async () => {
    let grandchild = 0;
    try {
      const err = await run(['sh', '-c', 'sleep 30 & echo $! >&2; wait'], { timeoutMs: 300 }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'TIMEOUT' });
      grandchild = Number(/: (\d+)$/.exec((err as Error).message)?.[1]);
      expect(grandchild).toBeGreaterThan(0);
      expect((err as Error).message).toBe(
        `command "sh -c sleep 30 & echo $! >&2; wait" did not finish within 300 ms: ${grandchild}`,
      );
      // The grandchild was killed with the command, not left running re-parented to init.
      await waitFor('the grandchild to end', async () => (isAlive(grandchild) ? undefined : true), 3_000, 20);
    } finally {
      if (grandchild > 0) signal(grandchild, 'SIGKILL');
    }
  }, 10_000);

  test('a program killed by a signal is reported with the signal name', async () => {
    const err = await run(['sh', '-c', 'echo dying >&2; kill -USR1 $$']).catch((e: unknown) => e);
    expect(err).toMatchObject({
      code: 'COMMAND_FAILED',
      message: 'command "sh -c echo dying >&2; kill -USR1 $$" killed by SIGUSR1: dying',
    });
  });

  test('a program that does not exist rejects with NOT_STARTED', async () => {
    await expect(run(['/nonexistent/l4fleet-none'])).rejects.toMatchObject({ code: 'NOT_STARTED' });
  });

  test('namespaces are entered with ip netns exec or nsenter', () => {
    expect(inNamespace(undefined, ['nft', 'list'])).toEqual(['nft', 'list']);
    expect(inNamespace('a', ['nft'])).toEqual(['ip', 'netns', 'exec', 'a', 'nft']);
    expect(inNamespace('a', ['nft'], 'nsenter')).toEqual(['nsenter', '--net=/run/netns/a', 'nft']);
  });
});

describe('process - children and waiting', () => {
  test('spawnChild keeps the output tail and stop() ends it', async () => {
    const c = spawnChild(['sh', '-c', 'echo up; exec sleep 30']);
    await waitFor('output', async () => (c.log().includes('up') ? true : undefined), 5_000, 20);
    expect(c.exitReason()).toBeUndefined();
    await c.stop();
    expect(c.exitReason()).toBe('killed by SIGTERM');
  });

  test('waitFor gives up early with the reason, and times out bounded', async () => {
    await expect(
      waitFor(
        'x',
        async () => undefined,
        5_000,
        10,
        () => 'exited 1',
      ),
    ).rejects.toThrow('x: exited 1');
    await expect(waitFor('y', async () => undefined, 50, 10)).rejects.toMatchObject({ code: 'TIMEOUT' });
  });

  test('waitFor - a wall clock stepped forward an hour is no timeout: the wait goes on to its answer', async () => {
    let checks = 0;
    try {
      const value = await waitFor(
        'ready',
        async () => {
          checks += 1;
          if (checks === 1) {
            // NTP steps Date an hour forward (Date only: timers and performance.now() go on).
            vi.useFakeTimers({ toFake: ['Date'] });
            vi.setSystemTime(Date.now() + 3_600_000);
          }
          return checks >= 3 ? 'up' : undefined;
        },
        5_000,
        10,
      );
      expect(value).toBe('up');
    } finally {
      vi.useRealTimers();
    }
  });
});
