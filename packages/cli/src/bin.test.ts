/**
 * The built `l4fleet` entry point as systemd runs it: `systemctl reload` sends SIGHUP whenever it is asked to, also
 * while the agent is still loading its modules or reading agent.yaml. Node's default for SIGHUP is to exit, and
 * systemd does not restart a unit whose process a SIGHUP ended (a clean death for Restart=on-failure).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';

const BIN = join(import.meta.dirname, '..', 'dist', 'bin.js');
const dir = mkdtempSync(join(tmpdir(), 'l4fleet-bin-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Whether the process catches SIGHUP now (/proc/PID/status SigCgt, bit 0 is signal 1); undefined once it is gone. */
function catchesHangup(pid: number): boolean | undefined {
  try {
    const m = /^SigCgt:\s*([0-9a-f]+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? (BigInt(`0x${m[1]}`) & 1n) === 1n : undefined;
  } catch {
    return undefined;
  }
}

describe.skipIf(!existsSync(BIN) || process.platform !== 'linux')('l4fleet bin - SIGHUP while the agent starts', () => {
  test('handled from the first moments on: a SIGHUP every 20 ms neither kills it nor changes its exit code', async () => {
    // agent.yaml missing: the agent loads everything, fails to read it and exits 1 (the host cannot run it).
    const child = spawn(process.execPath, [BIN, 'agent', '--config', join(dir, 'missing.yaml')], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (b: Buffer) => (output += b.toString()));
    child.stderr.on('data', (b: Buffer) => (output += b.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once('exit', (code, signal) => resolve({ code, signal })),
    );
    const pid = child.pid as number;
    // Bounded: until it catches SIGHUP or is gone (10 s at most).
    let caught: boolean | undefined = false;
    for (let i = 0; i < 2_000 && caught === false; i++) {
      caught = catchesHangup(pid);
      if (caught === false) await new Promise((r) => setTimeout(r, 5));
    }
    expect(caught, `it exited without ever handling SIGHUP (Node's default: exit)\n${output}`).toBe(true);
    let sent = 0;
    const timer = setInterval(() => {
      if (child.exitCode === null && child.signalCode === null && child.kill('SIGHUP')) sent += 1;
    }, 20);
    const end = await Promise.race([exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 20_000))]).finally(
      () => clearInterval(timer),
    );
    if (end === 'hung') child.kill('SIGKILL');
    expect(end, output).toEqual({ code: 1, signal: null });
    expect(sent).toBeGreaterThan(0);
    expect(output).toContain('missing.yaml');
  });

  test('a command other than the agent with the word agent in its line (--fleet agent) gets SIGHUP back', async () => {
    // A dashboard follows until a signal: started from a terminal, it must end with it (Node's default for SIGHUP).
    const child = spawn(
      process.execPath,
      [BIN, '--etcd', 'http://127.0.0.1:1', 'dashboard', '--listen', '127.0.0.1:0', '--fleet', 'agent'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    child.stdout.on('data', (b: Buffer) => (output += b.toString()));
    child.stderr.on('data', (b: Buffer) => (output += b.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once('exit', (code, signal) => resolve({ code, signal })),
    );
    try {
      // Bounded: until it serves (its URL on stdout) or 10 s.
      for (let i = 0; i < 200 && !output.includes('http://'); i++) await new Promise((r) => setTimeout(r, 50));
      expect(output, 'the dashboard did not start').toContain('http://');
      expect(catchesHangup(child.pid as number)).toBe(false);
      child.kill('SIGHUP');
      const end = await Promise.race([exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 10_000))]);
      expect(end).toEqual({ code: null, signal: 'SIGHUP' });
    } finally {
      child.kill('SIGKILL');
    }
  });
});

describe.skipIf(!existsSync(BIN))('l4fleet bin - a reader that went away (`| head -1`, `| true`)', () => {
  // stdout's reader closed: every write failed with EPIPE and, nothing listening for 'error' on stdout, Node threw
  // "Unhandled 'error' event" with a stack trace, exit 1, for a command that had done all it was asked.
  test('stdout closed before the output: no stack trace, exit 0 (the command did its work)', async () => {
    // `maglev table` needs no etcd; its output is one write, made after the pipe is gone.
    const child = spawn(process.execPath, [BIN, 'maglev', 'table', '-b', 'a,b', '-o', 'json'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once('close', (code, signal) => resolve({ code, signal })),
    );
    const end = await Promise.race([exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 20_000))]);
    if (end === 'hung') child.kill('SIGKILL');
    expect(stderr).not.toContain("Unhandled 'error'");
    expect(stderr).toBe('');
    expect(end).toEqual({ code: 0, signal: null });
  });
});
