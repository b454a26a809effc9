/**
 * SIGINT / SIGTERM / SIGHUP during a lab command that can undo itself (`add-node`): the first one aborts the command's
 * signal, so it stops between its steps and undoes what it did (runtime/lab-nodes.ts); a second one exits at once
 * (`lab down` removes what is left). Without a handler the process ended at once, leaving the lab half changed.
 */
import { constants } from 'node:os';
import { LabError } from './errors.js';

/**
 * The signals that stop a lab command (add-node, watch). SIGHUP too: an ssh session that dropped or a terminal that
 * closed (also forwarded by `l4fleet lab`) ended add-node with no undo and watch without its summary.
 */
export const STOP_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/**
 * The same signal again this soon after the first is that signal delivered twice, not a second request. A signal sent
 * to the whole process group (GNU `timeout`: its child, then kill(0, sig); systemd KillMode=control-group;
 * `kill -- -PGID`; a CI job cancelled; a terminal's Ctrl-C or hangup) reaches l4fleet-lab directly and again, a few ms
 * later, forwarded by `l4fleet lab` (packages/cli/src/commands/lab.ts); taken as a second request it cut the undo
 * short. A person who presses Ctrl-C again to stop waiting takes longer than this.
 */
export const REPEAT_SIGNAL_WINDOW_MS = 2_000;

export interface StopSignalHandlers {
  /** The first signal. */
  first(sig: NodeJS.Signals): void;
  /** A later one: another signal, or the same one REPEAT_SIGNAL_WINDOW_MS or more after the first. */
  again(sig: NodeJS.Signals): void;
  /** Milliseconds on a steady clock (default performance.now()). */
  now?(): number;
}

/**
 * Handles `signals` with `handlers` until the returned function removes them; a repeat of the first signal within
 * REPEAT_SIGNAL_WINDOW_MS is dropped. Also used by `lab watch` (flows/watch.ts).
 */
export function onStopSignals(signals: readonly NodeJS.Signals[], handlers: StopSignalHandlers): () => void {
  const now = handlers.now ?? (() => performance.now());
  let first: { sig: NodeJS.Signals; at: number } | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    if (first === undefined) {
      first = { sig, at: now() };
      handlers.first(sig);
    } else if (sig !== first.sig || now() - first.at >= REPEAT_SIGNAL_WINDOW_MS) {
      handlers.again(sig);
    }
  };
  for (const sig of signals) process.on(sig, onSignal);
  return () => {
    for (const sig of signals) process.removeListener(sig, onSignal);
  };
}

/** 128 + the signal's number: the status a shell reports for a command the signal ended (130, 143). */
export function signalExitCode(sig: NodeJS.Signals): number {
  return 128 + (constants.signals[sig] ?? 0);
}

/** The command stopped because of `signal`; its exit status is the signal's (130 / 143). */
export class LabInterrupted extends LabError {
  readonly signal: NodeJS.Signals;
  readonly exitCode: number;

  constructor(command: string, signal: NodeJS.Signals, options?: { cause?: unknown }) {
    super('INTERRUPTED', `${command}: interrupted by ${signal}`, options);
    this.signal = signal;
    this.exitCode = signalExitCode(signal);
  }
}

export interface InterruptIo {
  err(text: string): void;
  /** Ends the process at once (default process.exit): the second signal. */
  exit?(code: number): never;
  /** Milliseconds on a steady clock, for REPEAT_SIGNAL_WINDOW_MS (default performance.now()). */
  now?(): number;
}

/**
 * Runs `fn` with SIGINT, SIGTERM and SIGHUP handled for its lifetime (the handlers removed after). Rejects with a
 * LabInterrupted once a signal came and `fn` stopped by it; `fn` that finished anyway (the signal came after its last
 * check) resolves: what it did stands.
 */
export async function interruptible<T>(
  command: string,
  io: InterruptIo,
  fn: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const abort = new AbortController();
  let first: NodeJS.Signals | undefined;
  const remove = onStopSignals(STOP_SIGNALS, {
    first: (sig) => {
      first = sig;
      const after = REPEAT_SIGNAL_WINDOW_MS / 1000;
      io.err(`${command}: ${sig}: undoing what was done (${sig} again after ${after} s exits at once)`);
      abort.abort(new LabInterrupted(command, sig));
    },
    again: (sig) => {
      io.err(`${command}: ${sig} again: exiting now; lab down removes what is left`);
      (io.exit ?? process.exit)(signalExitCode(sig));
    },
    ...(io.now ? { now: io.now } : {}),
  });
  try {
    return await fn(abort.signal);
  } catch (err) {
    if (first === undefined || err instanceof LabInterrupted) throw err;
    throw new LabInterrupted(command, first, { cause: err });
  } finally {
    remove();
  }
}
