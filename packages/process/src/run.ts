/**
 * Running a program to completion, on the host or inside a named network namespace: the one runner of the lab, the
 * tests and the data plane. A non-zero exit, a program that cannot start and one that outlives its timeout each
 * become a ProcessError naming the command.
 */
import { spawn } from 'node:child_process';
import { ProcessError } from './errors.js';
import { killTree } from './tree.js';

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * How a command enters a namespace. `ip` (`ip netns exec`) also bind-mounts the namespace's /sys and /etc/netns
 * files, which `ip link`-style tools and daemons expect; `nsenter` (`nsenter --net`) only switches the network
 * namespace and saves a few milliseconds per command (the data plane runs one per delta).
 */
export type NetnsEntry = 'ip' | 'nsenter';

export interface RunOptions {
  /** Network namespace to run in (a name under /run/netns); absent: the caller's namespace. */
  readonly namespace?: string | undefined;
  /** How to enter `namespace`; default `ip`. */
  readonly enter?: NetnsEntry;
  /** Written to stdin, which is then closed; default nothing. */
  readonly input?: string;
  /** Killed (SIGKILL, with every process it started) and rejected with TIMEOUT after this long; default DEFAULT_COMMAND_TIMEOUT_MS. */
  readonly timeoutMs?: number;
  /** Resolve with a non-zero exit instead of rejecting; the caller looks at `code`. Default false. */
  readonly allowFailure?: boolean;
  /** Environment; default this process's. */
  readonly env?: NodeJS.ProcessEnv;
}

/** 30 s: a wedged `ip`, `nft` or `vtysh` must not hang its caller, and none of them takes seconds when healthy. */
export const DEFAULT_COMMAND_TIMEOUT_MS = 30_000;

/** `argv` prefixed so that it runs in `namespace`; unchanged without one. */
export function inNamespace(
  namespace: string | undefined,
  argv: readonly string[],
  enter: NetnsEntry = 'ip',
): string[] {
  if (!namespace) return [...argv];
  return enter === 'nsenter'
    ? ['nsenter', `--net=/run/netns/${namespace}`, ...argv]
    : ['ip', 'netns', 'exec', namespace, ...argv];
}

/** Runs `argv` (no shell) to completion and collects its output. */
export function run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const full = inNamespace(options.namespace, argv, options.enter);
  const [cmd, ...args] = full;
  if (!cmd) return Promise.reject(new ProcessError('NOT_STARTED', 'empty command'));
  const shown = full.join(' ');
  const timeoutMs = options.timeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: options.env ?? process.env });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    const said = () => Buffer.concat(stderr).toString('utf8').trim() || Buffer.concat(stdout).toString('utf8').trim();
    // Rejects at once: 'close' waits for the pipes, which a grandchild (`sh -c 'x &'`) may hold far beyond the
    // timeout. The command's whole tree is killed (a script's wedged command is the shell's child), and our ends of
    // the pipes destroyed, so 'close' comes even if something re-parented holds them.
    const timer = setTimeout(() => {
      if (child.pid === undefined) child.kill('SIGKILL');
      else killTree(child.pid);
      child.stdout.destroy();
      child.stderr.destroy();
      const soFar = said();
      reject(
        new ProcessError(
          'TIMEOUT',
          `command "${shown}" did not finish within ${timeoutMs} ms${soFar ? `: ${soFar}` : ''}`,
        ),
      );
    }, timeoutMs);
    child.stdout.on('data', (d: Buffer) => stdout.push(d));
    child.stderr.on('data', (d: Buffer) => stderr.push(d));
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new ProcessError('NOT_STARTED', `command "${shown}" could not start: ${err.message}`, { cause: err }));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const result = {
        code: code ?? (signal ? 128 : 1),
        stdout: Buffer.concat(stdout).toString('utf8'),
        stderr: Buffer.concat(stderr).toString('utf8'),
      };
      if (result.code !== 0 && !options.allowFailure) {
        const how = code === null && signal ? `killed by ${signal}` : `exited ${result.code}`;
        reject(new ProcessError('COMMAND_FAILED', `command "${shown}" ${how}: ${said()}`));
      } else resolve(result);
    });
    // A program that exits without reading its input (EPIPE) is not an error of ours: its exit code tells why.
    child.stdin.on('error', () => {});
    child.stdin.end(options.input ?? '');
  });
}

/** Runs a shell script (several `ip` lines etc.) in one process (`sh -ec`): much faster than one spawn per line. */
export function runScript(script: string, options: RunOptions = {}): Promise<RunResult> {
  return run(['sh', '-ec', script], options);
}
