/** interruptible(): the first SIGINT / SIGTERM aborts the command so it undoes itself; a second one exits at once. */
import { describe, expect, test } from 'vitest';
import { interruptible, LabInterrupted } from './interrupt.js';

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
    expect(err).toEqual(['add-node: SIGINT: undoing what was done (SIGINT again exits at once)']);
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

  test("no signal: the result and the error are the command's own", async () => {
    expect(await interruptible('add-node', { err: () => {} }, async () => 'node4')).toBe('node4');
    await expect(
      interruptible('add-node', { err: () => {} }, async () => Promise.reject(new Error('x'))),
    ).rejects.toThrow(/^x$/);
  });
});
