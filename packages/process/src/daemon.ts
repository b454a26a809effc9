/**
 * Long-running programs. `startDaemon`: detached, output appended to a file, outliving its starter (the lab's
 * daemons live across `lab` commands; they are found again by pid and namespace). `spawnChild`: our child, output
 * kept in memory, killed when this process exits or dies of SIGTERM or SIGINT (tests and benches: a crashed or
 * interrupted test leaves nothing running).
 * Inside a namespace both go through `ip netns exec` (or nsenter), which execs the program: the pid is the daemon's.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { ProcessError } from './errors.js';
import { inNamespace, type NetnsEntry } from './run.js';

export interface DaemonOptions {
  readonly namespace?: string | undefined;
  readonly enter?: NetnsEntry;
  /** Where stdout and stderr are appended. */
  readonly logFile: string;
  readonly env?: NodeJS.ProcessEnv;
}

export function startDaemon(argv: readonly string[], options: DaemonOptions): ChildProcess & { pid: number } {
  const full = inNamespace(options.namespace, argv, options.enter);
  const [cmd, ...args] = full;
  if (!cmd) throw new ProcessError('NOT_STARTED', 'empty command');
  const fd = openSync(options.logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(cmd, args, { detached: true, stdio: ['ignore', fd, fd], env: options.env ?? process.env });
  } finally {
    closeSync(fd); // the daemon has its own copy; ours would leak one fd per start
  }
  // A program that cannot start emits 'error' a tick later, an uncaught exception without a listener; the missing
  // pid below already reports it. After the start the daemon is on its own (found again by pid).
  child.once('error', () => {});
  child.unref();
  if (child.pid === undefined) throw new ProcessError('NOT_STARTED', `command "${full.join(' ')}" did not start`);
  return child as ChildProcess & { pid: number };
}

export interface ChildOptions {
  readonly namespace?: string | undefined;
  readonly enter?: NetnsEntry;
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  /** How much of the output `log()` keeps, characters; default DEFAULT_LOG_TAIL_CHARS. */
  readonly logTailChars?: number;
}

/** Enough of a daemon's last words to see why it did not come up. */
export const DEFAULT_LOG_TAIL_CHARS = 8_000;
/** How long the output of an exited child is read on while a grandchild still holds its pipes. */
const EXIT_DRAIN_MS = 200;
/** How long `stop` waits after SIGTERM before SIGKILL. */
export const DEFAULT_STOP_TIMEOUT_MS = 5_000;

export interface Child {
  readonly process: ChildProcess;
  readonly pid: number | undefined;
  /** The tail of stdout and stderr so far. */
  log(): string;
  /** Why it is not running any more (exit code or signal), undefined while it runs. */
  exitReason(): string | undefined;
  /** Resolves once it has exited. */
  exited(): Promise<void>;
  /** `signal` (default SIGTERM), SIGKILL after `killAfterMs`; resolves once it has exited. Idempotent. */
  stop(signal?: NodeJS.Signals, killAfterMs?: number): Promise<void>;
}

const live = new Set<ChildProcess>();
let reaperInstalled = false;

function killLive(): void {
  for (const c of live) c.kill('SIGKILL');
}

/**
 * SIGKILL whatever a crashed or interrupted test or bench left running. 'exit' covers a normal end and
 * process.exit() ('exit' allows only synchronous work). A signal with no listener kills Node without 'exit', and
 * that is how vitest ends its fork workers (SIGTERM) and a terminal ends a bench (SIGINT): so we listen for those
 * too, but act only when ours is the only listener. A program with its own handler (the CLI's graceful shutdown)
 * decides how and when it exits, and its exit then runs the 'exit' hook. Acting alone, we kill the children, drop
 * our listener and raise the signal again, so the process still dies of it and its parent sees the usual status.
 */
function installReaper(): void {
  if (reaperInstalled) return;
  reaperInstalled = true;
  process.once('exit', killLive);
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    const onSignal = (): void => {
      if (process.listenerCount(sig) > 1) return;
      killLive();
      process.removeListener(sig, onSignal);
      process.kill(process.pid, sig);
    };
    // First in line: a `once` listener removes itself before it runs, so counted after it ours would look alone.
    process.prependListener(sig, onSignal);
  }
}

export function spawnChild(argv: readonly string[], options: ChildOptions = {}): Child {
  const full = inNamespace(options.namespace, argv, options.enter);
  const [cmd, ...args] = full;
  if (!cmd) throw new ProcessError('NOT_STARTED', 'empty command');
  const tail = options.logTailChars ?? DEFAULT_LOG_TAIL_CHARS;
  installReaper();
  const proc = spawn(cmd, args, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  let startError: Error | undefined;
  const append = (d: Buffer) => {
    log = (log + d.toString()).slice(-tail);
  };
  proc.stdout?.on('data', append);
  proc.stderr?.on('data', append);
  proc.once('error', (err) => {
    startError = err;
  });
  live.add(proc);
  // Gone at 'exit' (or a failed start: 'error', no 'exit'), not at 'close': a grandchild that inherited the pipes
  // (`sh -c 'daemon &'`) holds them open as long as it runs. The pipes get EXIT_DRAIN_MS for the last output.
  const gone = new Promise<void>((resolve) => {
    proc.once('error', () => resolve());
    proc.once('exit', () => {
      const drained = setTimeout(() => {
        proc.stdout?.destroy();
        proc.stderr?.destroy();
        resolve();
      }, EXIT_DRAIN_MS);
      proc.once('close', () => {
        clearTimeout(drained);
        resolve();
      });
    });
  });
  void gone.then(() => live.delete(proc));
  const running = () => proc.exitCode === null && proc.signalCode === null && startError === undefined;

  return {
    process: proc,
    get pid() {
      return proc.pid;
    },
    log: () => log,
    exitReason() {
      if (startError) return `"${full.join(' ')}" could not start: ${startError.message}`;
      if (proc.exitCode !== null) return `exited ${proc.exitCode}`;
      if (proc.signalCode !== null) return `killed by ${proc.signalCode}`;
      return undefined;
    },
    exited: () => (running() ? gone : Promise.resolve()),
    async stop(signal = 'SIGTERM', killAfterMs = DEFAULT_STOP_TIMEOUT_MS) {
      if (!running()) return;
      proc.kill(signal);
      const timer = setTimeout(() => proc.kill('SIGKILL'), killAfterMs);
      await gone;
      clearTimeout(timer);
    },
  };
}
