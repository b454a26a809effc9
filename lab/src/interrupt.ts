/**
 * SIGINT / SIGTERM during a lab command that can undo itself (`add-node`): the first one aborts the command's signal,
 * so it stops between its steps and undoes what it did (runtime/lab-nodes.ts); a second one exits at once (`lab down`
 * removes what is left). Without a handler the process ended at once, leaving the lab half changed.
 */
import { constants } from 'node:os';
import { LabError } from './errors.js';

const SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM'];

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
}

/**
 * Runs `fn` with SIGINT and SIGTERM handled for its lifetime (the handlers removed after). Rejects with a
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
  const onSignal = (sig: NodeJS.Signals) => {
    if (first !== undefined) {
      io.err(`${command}: ${sig} again: exiting now; lab down removes what is left`);
      (io.exit ?? process.exit)(signalExitCode(sig));
      return;
    }
    first = sig;
    io.err(`${command}: ${sig}: undoing what was done (${sig} again exits at once)`);
    abort.abort(new LabInterrupted(command, sig));
  };
  for (const sig of SIGNALS) process.on(sig, onSignal);
  try {
    return await fn(abort.signal);
  } catch (err) {
    if (first === undefined || err instanceof LabInterrupted) throw err;
    throw new LabInterrupted(command, first, { cause: err });
  } finally {
    for (const sig of SIGNALS) process.removeListener(sig, onSignal);
  }
}
