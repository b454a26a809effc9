import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, test } from 'vitest';
import { isAlive, signal } from './pids.js';
import { waitFor } from './wait.js';

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

  test('a starter with its own SIGTERM handler keeps it: the handler runs and decides the exit', async () => {
    const s = starter(
      [
        `const c = spawnChild(['sleep', '30']);`,
        `process.on('SIGTERM', () => setTimeout(() => process.exit(3), 50));`,
        'console.log(c.pid);',
        'setInterval(() => {}, 1000);',
      ].join('\n'),
    );
    const pid = Number(await s.firstLine);
    cleanup.push(() => signal(pid, 'SIGKILL'));
    s.node.kill('SIGTERM');
    expect(await s.exited).toEqual({ code: 3, signal: null });
    await waitFor('sleep gone', async () => (isAlive(pid) ? undefined : true), 5_000, 20);
  });
});
