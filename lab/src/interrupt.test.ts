/**
 * interruptible(): the first SIGINT / SIGTERM / SIGHUP aborts the command so it undoes itself; a second one exits at
 * once, but not the same signal again within REPEAT_SIGNAL_WINDOW_MS (one signal delivered twice: to the process
 * group, and forwarded by `l4fleet lab`).
 */
import { describe, expect, test } from 'vitest';
import { interruptible, LabInterrupted, REPEAT_SIGNAL_WINDOW_MS } from './interrupt.js';

/** The handlers interruptible() added for `sig`, called directly (process.emit would reach the runner's too). */
function send(sig: NodeJS.Signals, before: Set<unknown>): number {
  const ours = process.listeners(sig).filter((l) => !before.has(l)) as ((s: NodeJS.Signals) => void)[];
  for (const h of ours) h(sig);
  return ours.length;
}

describe('lab - interruptible', () => {
  test('SIGINT: the signal aborts, the command undoes and rejects; LabInterrupted exit 130, handlers removed', async () => {
    const before = new Set<unknown>([...process.listeners('SIGINT'), ...process.listeners('SIGTERM')]);
    const err: string[] = [];
    let undone = false;
    const run = interruptible('add-node', { err: (t) => err.push(t) }, async (signal) => {
      expect(send('SIGINT', before)).toBe(1);
      expect(signal.aborted).toBe(true);
      undone = true; // what lab-nodes.ts does in its catch
      throw new Error('router ECMP route: gave up: add-node: interrupted by SIGINT');
    });
    const e = await run.catch((x: unknown) => x);
    expect(e).toBeInstanceOf(LabInterrupted);
    expect(e).toMatchObject({ code: 'INTERRUPTED', signal: 'SIGINT', exitCode: 130 });
    expect((e as Error).message).toBe('add-node: interrupted by SIGINT');
    expect(undone).toBe(true);
    expect(err).toEqual([
      `add-node: SIGINT: undoing what was done (SIGINT again after ${REPEAT_SIGNAL_WINDOW_MS / 1000} s exits at once)`,
    ]);
    expect(process.listeners('SIGINT').filter((l) => !before.has(l))).toEqual([]);
    expect(process.listeners('SIGTERM').filter((l) => !before.has(l))).toEqual([]);
  });

  test('a second signal exits at once with its status (SIGTERM: 143)', async () => {
    const before = new Set<unknown>([...process.listeners('SIGINT'), ...process.listeners('SIGTERM')]);
    const exits: number[] = [];
    const exit = ((code: number) => {
      exits.push(code);
    }) as (code: number) => never;
    const run = interruptible('add-node', { err: () => {}, exit }, async (signal) => {
      send('SIGINT', before);
      send('SIGTERM', before);
      throw signal.reason;
    });
    await expect(run).rejects.toMatchObject({ exitCode: 130 });
    expect(exits).toEqual([143]);
  });

  // `timeout 1 l4fleet lab add-node`: SIGTERM to l4fleet-lab, then to the whole group, so l4fleet-lab got it again
  // forwarded by `l4fleet lab` and exited at once, 'SIGTERM again', in the middle of its undo.
  test('the same signal again within the window is the same one delivered twice: the undo runs on, no exit', async () => {
    const before = new Set<unknown>(process.listeners('SIGTERM'));
    const exits: number[] = [];
    const err: string[] = [];
    const exit = ((code: number) => {
      exits.push(code);
    }) as (code: number) => never;
    let clock = 1_000;
    const io = { err: (t: string) => err.push(t), exit, now: () => clock };
    const run = interruptible('add-node', io, async (signal) => {
      send('SIGTERM', before);
      clock += 5; // the forwarded copy, a few ms later
      send('SIGTERM', before);
      clock += REPEAT_SIGNAL_WINDOW_MS - 10;
      send('SIGTERM', before);
      throw signal.reason;
    });
    await expect(run).rejects.toMatchObject({ signal: 'SIGTERM', exitCode: 143 });
    expect(exits).toEqual([]);
    expect(err).toEqual([
      `add-node: SIGTERM: undoing what was done (SIGTERM again after ${REPEAT_SIGNAL_WINDOW_MS / 1000} s exits at once)`,
    ]);
  });

  test('the same signal again after the window is a second request: exits at once', async () => {
    const before = new Set<unknown>(process.listeners('SIGINT'));
    const exits: number[] = [];
    const exit = ((code: number) => {
      exits.push(code);
    }) as (code: number) => never;
    let clock = 0;
    const run = interruptible('add-node', { err: () => {}, exit, now: () => clock }, async (signal) => {
      send('SIGINT', before);
      clock += REPEAT_SIGNAL_WINDOW_MS;
      send('SIGINT', before);
      throw signal.reason;
    });
    await expect(run).rejects.toMatchObject({ exitCode: 130 });
    expect(exits).toEqual([130]);
  });

  // An ssh session dropped: the hangup ended add-node with no undo.
  test('SIGHUP aborts like SIGINT: the command undoes, LabInterrupted exit 129, handler removed', async () => {
    const before = new Set<unknown>(process.listeners('SIGHUP'));
    const run = interruptible('add-node', { err: () => {} }, async (signal) => {
      expect(send('SIGHUP', before)).toBe(1);
      throw signal.reason;
    });
    await expect(run).rejects.toMatchObject({ code: 'INTERRUPTED', signal: 'SIGHUP', exitCode: 129 });
    expect(process.listeners('SIGHUP').filter((l) => !before.has(l))).toEqual([]);
  });

  test("no signal: the result and the error are the command's own", async () => {
    expect(await interruptible('add-node', { err: () => {} }, async () => 'node4')).toBe('node4');
    await expect(
      interruptible('add-node', { err: () => {} }, async () => Promise.reject(new Error('x'))),
    ).rejects.toThrow(/^x$/);
  });
});
