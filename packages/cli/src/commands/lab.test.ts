/** `l4fleet lab ...` hands its arguments to l4fleet-lab, which prints its own errors. */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import type { CliIo } from '../io.js';
import { runCli } from '../program.js';
import { runLab } from './lab.js';

describe('cli - lab', () => {
  test('a failing lab command keeps its exit status and adds no second error line of its own', async () => {
    const err: string[] = [];
    const io: CliIo = { out: () => {}, err: (t) => err.push(t) };
    // An unknown subcommand: l4fleet-lab refuses it (usage, exit 2) before touching any lab.
    const code = await runCli(['lab', 'no-such-lab-command'], io);
    expect(code).toBe(2);
    expect(err).toEqual([]);
  });
});

describe('cli - lab: a signal to l4fleet reaches l4fleet-lab', () => {
  const dir = mkdtempSync(join(tmpdir(), 'l4fleet-lab-signal-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /**
   * A stand-in for l4fleet-lab: says it is ready in `ready`, records the signal it gets in `got`, then dies of it
   * (handler removed, the signal sent to itself) as a lab command without a handler would.
   */
  function stub(name: string): { command: { file: string; args: string[] }; ready: string; got: string } {
    const ready = join(dir, `${name}.ready`);
    const got = join(dir, `${name}.got`);
    const script = join(dir, `${name}.mjs`);
    writeFileSync(
      script,
      `import { writeFileSync } from 'node:fs';
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(sig, () => {
    writeFileSync(${JSON.stringify(got)}, sig);
    process.kill(process.pid, sig);
  });
}
writeFileSync(${JSON.stringify(ready)}, 'ready');
setTimeout(() => {}, 20_000);
`,
    );
    return { command: { file: process.execPath, args: [script] }, ready, got };
  }

  /** Runs the stub under runLab and, once it is ready, calls the wrapper's own handler for `sig` (not process.emit:
   * that reaches the test runner's handlers too). */
  async function signalled(sig: NodeJS.Signals, name: string) {
    const s = stub(name);
    const before = new Set(process.listeners(sig));
    const result = runLab([], { command: s.command }).then(
      (code) => ({ code }),
      (err: Error & { exitCode?: number }) => ({ code: err.exitCode, message: err.message }),
    );
    // Bounded: until the stub is ready (10 s at most).
    for (let i = 0; i < 200 && !existsSync(s.ready); i++) await new Promise((r) => setTimeout(r, 50));
    const handlers = process.listeners(sig).filter((l) => !before.has(l)) as ((s: NodeJS.Signals) => void)[];
    for (const h of handlers) h(sig);
    const end = await Promise.race([result, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 10_000))]);
    const leftover = process.listeners(sig).filter((l) => !before.has(l));
    return {
      handlers: handlers.length,
      end,
      got: existsSync(s.got) ? readFileSync(s.got, 'utf8') : undefined,
      leftover,
    };
  }

  // `kill -TERM <l4fleet>` ended the wrapper (143) and left `lab up` running orphaned, holding the lab's lock.
  test('SIGTERM is forwarded; the child died of it: exit 143 (128 + 15), the handler removed', async () => {
    const r = await signalled('SIGTERM', 'term');
    expect(r.handlers).toBe(1);
    expect(r.got).toBe('SIGTERM');
    expect(r.end).toEqual({ code: 143, message: 'lab: ended by SIGTERM' });
    expect(r.leftover).toEqual([]);
  });

  // `kill -INT <l4fleet>` from another shell while `l4fleet lab` ran in a terminal's foreground: not forwarded (the
  // wrapper took the terminal to have sent it to the lab too), and the wrapper's handler kept it alive: nothing stopped.
  // Every copy is forwarded now; l4fleet-lab takes a copy that also came from the terminal for the same signal
  // (lab/src/interrupt.ts, REPEAT_SIGNAL_WINDOW_MS).
  test("SIGINT and SIGHUP are forwarded, in a terminal's foreground or not (kill -INT from another shell)", async () => {
    for (const sig of ['SIGINT', 'SIGHUP'] as const) {
      const r = await signalled(sig, sig);
      expect(r.got).toBe(sig);
      expect(r.end).toEqual({ code: 128 + (sig === 'SIGINT' ? 2 : 1), message: `lab: ended by ${sig}` });
      expect(r.leftover).toEqual([]);
    }
  });
});
