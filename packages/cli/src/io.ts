/** Where a command writes; injected so tests can capture output without spawning a process. */
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
  /** Aborted once stdout's reader went away (EPIPE: `| head -1`): a follow command stops, nothing reads it. */
  readonly closed?: AbortSignal;
}

const stdoutGone = new AbortController();
let stderrGone = false;

/**
 * Takes a closed stdout or stderr (EPIPE: `l4fleet get vips -o json | head -1`) as the end of that output, not as an
 * error: with nobody listening for 'error' on them, Node threw "Unhandled 'error' event" with a stack trace (exit 1)
 * for a command that had done its work. Later writes to it are dropped; the command ends with its own status (a read
 * 0: its reader took what it wanted, as `| head` means), a follow (`events`) by io.closed. Called once, by bin.ts.
 */
export function endQuietlyOnClosedOutput(): void {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    stdoutGone.abort();
  });
  process.stderr.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    stderrGone = true;
  });
}

const line = (text: string) => (text.endsWith('\n') ? text : `${text}\n`);

export const processIo: CliIo = {
  out: (text) => {
    if (!stdoutGone.signal.aborted) process.stdout.write(line(text));
  },
  err: (text) => {
    if (!stderrGone) process.stderr.write(line(text));
  },
  closed: stdoutGone.signal,
};

/**
 * Exit codes of `l4fleet`: 0 ok, 1 the operation failed, 2 the command line was wrong, 3 outcome unknown, 130 a
 * follow (`events`) stopped by SIGINT (128 + 2, as a shell reports a command Ctrl-C ended).
 */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
/** A write was sent and etcd did not answer: it may or may not have taken effect (the message says how to check). */
export const EXIT_OUTCOME_UNKNOWN = 3;
/** Ended by SIGINT (Ctrl-C): 128 + its number, told apart from an end the command chose (--count, --timeout-ms). */
export const EXIT_SIGINT = 130;

/** A failure the CLI reports as one line per problem on stderr, with its exit code. */
export class CliError extends Error {
  override readonly name = 'CliError';
  readonly exitCode: number;
  readonly problems: readonly string[];

  constructor(problems: string | readonly string[], exitCode = EXIT_FAILURE, options?: { cause?: unknown }) {
    const list = typeof problems === 'string' ? [problems] : problems;
    super(list.join('\n'), options);
    this.problems = list;
    this.exitCode = exitCode;
  }
}
