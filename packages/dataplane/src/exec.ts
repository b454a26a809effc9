/** The data plane's one seam to programs (nft, ip): injected, so unit tests record instead of running. */
import { spawn } from 'node:child_process';
import { inNamespace, ProcessError, type RunResult, run } from '@l4fleet/process';

export type ExecResult = RunResult;

/**
 * What a program reads on stdin: one string, or pieces written one after another (an nft script of hundreds of
 * VIPs is longer than a JS string can be; nftStatements() in nft/ops.ts).
 */
export type ExecInput = string | Iterable<string>;

/**
 * Runs `argv`, feeding `input` on stdin; resolves with the exit code (never rejects on a non-zero exit). Rejects when
 * the program cannot start, outlives its timeout, or when iterating `input` throws (the program is then killed
 * before its stdin is closed, so it never acts on part of its input).
 */
export type Exec = (argv: readonly string[], input?: ExecInput) => Promise<ExecResult>;

/** A wedged nft must not hang the agent; a healthy one takes milliseconds. */
const KILL_AFTER_MS = 30_000;

/**
 * Extra time a streamed input earns per character once it is all written: nft parses as it reads, then evaluates
 * and commits the whole transaction. Measured 2026-12-06 (nft 1.0.6): ~0.25 us per character end to end, a first
 * apply of 40 default-size VIPs (52 M characters) in 13.3 s; 1 us per character is four times that.
 */
const KILL_AFTER_MS_PER_CHAR = 0.001;

/**
 * `nsenter --net` rather than `ip netns exec`: it only switches the network namespace and does not
 * remount /sys, which saves a few milliseconds on every delta.
 */
export function createExec(netns?: string): Exec {
  return (argv, input) =>
    input === undefined || typeof input === 'string'
      ? run(argv, {
          namespace: netns,
          enter: 'nsenter',
          allowFailure: true,
          timeoutMs: KILL_AFTER_MS,
          ...(input === undefined ? {} : { input }),
        })
      : runStreamed(inNamespace(netns, argv, 'nsenter'), input);
}

/**
 * Runs `argv` writing `pieces` to its stdin as the pipe takes them (one piece in memory at a time). The timeout
 * restarts with every piece written, then allows KILL_AFTER_MS plus KILL_AFTER_MS_PER_CHAR for each character.
 */
async function runStreamed(argv: readonly string[], pieces: Iterable<string>): Promise<ExecResult> {
  const shown = argv.join(' ');
  const child = spawn(argv[0] as string, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  child.stdout.on('data', (d: Buffer) => stdout.push(d));
  child.stderr.on('data', (d: Buffer) => stderr.push(d));
  // A program that exits without reading all its input (EPIPE) is not an error of ours: its exit code tells why.
  child.stdin.on('error', () => {});
  let failed: Error | undefined;
  const closed = new Promise<ExecResult>((resolve) => {
    child.on('error', (err) => {
      failed ??= new ProcessError('NOT_STARTED', `command "${shown}" could not start: ${err.message}`, { cause: err });
    });
    child.on('close', (code, signal) =>
      resolve({
        code: code ?? (signal ? 128 : 1),
        stdout: Buffer.concat(stdout).toString('utf8'),
        stderr: Buffer.concat(stderr).toString('utf8'),
      }),
    );
  });
  const ended = (): boolean => child.exitCode !== null || child.signalCode !== null || child.stdin.destroyed;
  let timer: NodeJS.Timeout | undefined;
  const killAfter = (ms: number): void => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      failed ??= new ProcessError('TIMEOUT', `command "${shown}" did not finish within ${Math.round(ms)} ms`);
      child.kill('SIGKILL');
      child.stdout.destroy();
      child.stderr.destroy();
    }, ms);
  };
  let chars = 0;
  try {
    killAfter(KILL_AFTER_MS);
    for (const piece of pieces) {
      if (ended() || failed !== undefined) break;
      chars += piece.length;
      if (!child.stdin.write(piece)) await drained(child);
      killAfter(KILL_AFTER_MS);
    }
  } catch (err) {
    // Killed, not ended: a program reading a script (nft -f -) must not run the part it got.
    clearTimeout(timer);
    child.kill('SIGKILL');
    await closed;
    throw err;
  }
  if (failed === undefined) {
    child.stdin.end();
    killAfter(KILL_AFTER_MS + chars * KILL_AFTER_MS_PER_CHAR);
  }
  const result = await closed;
  clearTimeout(timer);
  if (failed !== undefined) throw failed;
  return result;
}

/** Resolves when the child's stdin can take more, or can take nothing any more (closed, child gone). */
function drained(child: ReturnType<typeof spawn>): Promise<void> {
  const stdin = child.stdin;
  if (stdin === null) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      stdin.off('drain', done);
      stdin.off('close', done);
      stdin.off('error', done);
      child.off('exit', done);
      resolve();
    };
    stdin.on('drain', done);
    stdin.on('close', done);
    stdin.on('error', done);
    child.on('exit', done);
  });
}
