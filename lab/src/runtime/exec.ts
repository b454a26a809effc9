/** Running commands on the host and inside lab namespaces; every failure becomes a LabError naming the command. */
import { type ChildProcess, spawn } from 'node:child_process';
import { openSync } from 'node:fs';
import { LabError } from '../errors.js';

export interface RunResult {
  readonly stdout: string;
  readonly stderr: string;
  readonly code: number;
}

export interface RunOptions {
  /** Network namespace to run in (`ip netns exec`); absent: the root namespace. */
  namespace?: string | undefined;
  input?: string;
  /** Default 30 s: a wedged `ip` or `vtysh` must not hang `lab up`. */
  timeoutMs?: number;
  /** Do not throw on a non-zero exit; the caller looks at `code`. */
  allowFailure?: boolean;
  env?: NodeJS.ProcessEnv;
}

export const DEFAULT_COMMAND_TIMEOUT_MS = 30_000;

export function inNamespace(namespace: string | undefined, argv: readonly string[]): string[] {
  return namespace ? ['ip', 'netns', 'exec', namespace, ...argv] : [...argv];
}

export function run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const full = inNamespace(options.namespace, argv);
  const [cmd, ...args] = full;
  if (!cmd) throw new LabError('COMMAND_FAILED', 'empty command');
  const timeoutMs = options.timeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: options.env ?? process.env });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new LabError('TIMEOUT', `command "${full.join(' ')}" did not finish within ${timeoutMs} ms`));
    }, timeoutMs);
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(
        new LabError('COMMAND_FAILED', `command "${full.join(' ')}" could not start: ${err.message}`, { cause: err }),
      );
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const exit = code ?? (signal ? 128 : 1);
      if (exit !== 0 && !options.allowFailure) {
        reject(
          new LabError(
            'COMMAND_FAILED',
            `command "${full.join(' ')}" exited ${exit}: ${stderr.trim() || stdout.trim()}`,
          ),
        );
        return;
      }
      resolve({ stdout, stderr, code: exit });
    });
    // A command that exits without reading its input (EPIPE) is not an error of ours.
    child.stdin.on('error', () => {});
    child.stdin.end(options.input ?? '');
  });
}

/** Runs a shell script (several `ip` lines etc.) in one process: much faster than one spawn per line. */
export function runScript(script: string, options: RunOptions = {}): Promise<RunResult> {
  return run(['sh', '-ec', script], options);
}

export interface DaemonOptions {
  namespace?: string | undefined;
  logFile: string;
  env?: NodeJS.ProcessEnv;
}

/**
 * Starts a long-running process detached from us (it outlives `lab up`), output appended to `logFile`.
 * `ip netns exec` execs the command, so the returned pid is the daemon's own.
 */
export function startDaemon(argv: readonly string[], options: DaemonOptions): ChildProcess & { pid: number } {
  const full = inNamespace(options.namespace, argv);
  const [cmd, ...args] = full;
  if (!cmd) throw new LabError('COMMAND_FAILED', 'empty command');
  const fd = openSync(options.logFile, 'a');
  const child = spawn(cmd, args, { detached: true, stdio: ['ignore', fd, fd], env: options.env ?? process.env });
  child.unref();
  if (child.pid === undefined) throw new LabError('COMMAND_FAILED', `command "${full.join(' ')}" did not start`);
  return child as ChildProcess & { pid: number };
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `check` until it returns a value (not undefined) or `timeoutMs` passes; bounded in time and count. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs: number,
  intervalMs = 200,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (let i = 0; i < Math.ceil(timeoutMs / intervalMs) + 1; i++) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() >= deadline) break;
    await sleep(intervalMs);
  }
  const why = last instanceof Error ? `: ${last.message}` : '';
  throw new LabError('TIMEOUT', `${what} not ready within ${timeoutMs} ms${why}`, { cause: last });
}
