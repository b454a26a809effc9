import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, test } from 'vitest';
import { spawnChild, startDaemon } from './daemon.js';
import { isAlive, signal } from './pids.js';
import { sleep, waitFor } from './wait.js';

const DAEMON_TS = fileURLToPath(new URL('./daemon.ts', import.meta.url));
const TSX = createRequire(import.meta.url).resolve('tsx');

const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const f of cleanup.splice(0)) f();
});

/** Runs `body` (TypeScript, spawnChild in scope) in a node of its own; resolves with the first line it prints. */
function starter(body: string) {
  const dir = mkdtempSync(join(tmpdir(), 'l4fleet-daemon-test-'));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  const script = join(dir, 'starter.ts');
  writeFileSync(script, `import { spawnChild } from ${JSON.stringify(DAEMON_TS)};\n${body}\n`);
  const node = spawn(process.execPath, ['--import', TSX, script], { stdio: ['ignore', 'pipe', 'inherit'] });
  cleanup.push(() => signal(node.pid ?? 0, 'SIGKILL'));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    node.once('exit', (code, sig) => resolve({ code, signal: sig })),
  );
  const firstLine = new Promise<string>((resolve, reject) => {
    let out = '';
    node.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve(out.split('\n')[0] ?? '');
    });
    node.once('exit', () => reject(new Error(`starter exited before printing: ${out}`)));
  });
  return { node, exited, firstLine };
}

describe('process - spawnChild children at the starter exit', () => {
  test('a starter ended by SIGTERM (as vitest ends its workers) takes its children with it', async () => {
    const s = starter(`const c = spawnChild(['sleep', '30']);\nconsole.log(c.pid);\nsetInterval(() => {}, 1000);`);
    const pid = Number(await s.firstLine);
    cleanup.push(() => signal(pid, 'SIGKILL'));
    expect(isAlive(pid)).toBe(true);
    s.node.kill('SIGTERM');
    // The starter still dies of SIGTERM: its parent sees the usual exit status.
    expect(await s.exited).toEqual({ code: null, signal: 'SIGTERM' });
    await waitFor('sleep gone', async () => (isAlive(pid) ? undefined : true), 5_000, 20);
  });

  test.each([
    ['on, after the first spawnChild', `const c = spawnChild(['sleep', '30']);\nprocess.on('SIGTERM', mine);`],
    ['once, before the first spawnChild', `process.once('SIGTERM', mine);\nconst c = spawnChild(['sleep', '30']);`],
  ])(
    'a starter with its own SIGTERM handler (%s) keeps it: the handler runs and decides the exit',
    async (_, setup) => {
      const s = starter(
        [
          'const mine = () => setTimeout(() => process.exit(3), 50);',
          setup,
          'console.log(c.pid);',
          'setInterval(() => {}, 1000);',
        ].join('\n'),
      );
      const pid = Number(await s.firstLine);
      cleanup.push(() => signal(pid, 'SIGKILL'));
      s.node.kill('SIGTERM');
      expect(await s.exited).toEqual({ code: 3, signal: null });
      await waitFor('sleep gone', async () => (isAlive(pid) ? undefined : true), 5_000, 20);
    },
  );
});

describe('process - spawnChild stop', () => {
  test('stop() resolves once the child exits, while a grandchild still holds its output pipes', async () => {
    const c = spawnChild(['sh', '-c', 'sleep 30 & echo $!; wait']);
    let grandchild = 0;
    try {
      grandchild = await waitFor('grandchild pid', async () => Number(c.log().trim()) || undefined, 5_000, 20);
      await c.stop('SIGTERM', 200);
      expect(c.exitReason()).toBe('killed by SIGTERM');
      await c.exited();
    } finally {
      signal(grandchild, 'SIGKILL');
      await c.stop('SIGKILL');
    }
  }, 10_000);
});

describe('process - startDaemon', () => {
  test('a program that does not exist is NOT_STARTED, not an uncaught exception later, and no fd is left open', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'l4fleet-daemon-test-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const uncaught: unknown[] = [];
    const onUncaught = (err: unknown) => uncaught.push(err);
    process.on('uncaughtException', onUncaught);
    cleanup.push(() => process.off('uncaughtException', onUncaught));
    const fdsBefore = readdirSync('/proc/self/fd').length;
    expect(() => startDaemon(['/nonexistent/l4fleet-none'], { logFile: join(dir, 'log') })).toThrow(
      expect.objectContaining({ code: 'NOT_STARTED' }),
    );
    await sleep(100);
    expect(uncaught).toEqual([]);
    expect(readdirSync('/proc/self/fd').length).toBe(fdsBefore);
  });

  test('the log file is not held open by the starter', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'l4fleet-daemon-test-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const fdsBefore = readdirSync('/proc/self/fd').length;
    const d = startDaemon(['sh', '-c', 'echo started'], { logFile: join(dir, 'log') });
    cleanup.push(() => signal(d.pid, 'SIGKILL'));
    expect(readdirSync('/proc/self/fd').length).toBe(fdsBefore);
    await waitFor(
      'log written',
      async () => (readFileSync(join(dir, 'log'), 'utf8') === 'started\n' ? true : undefined),
      5_000,
      20,
    );
  });
});
