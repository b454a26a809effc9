/** Where a command writes; injected so tests can capture output without spawning a process. */
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
}

export const processIo: CliIo = {
  out: (text) => process.stdout.write(text.endsWith('\n') ? text : `${text}\n`),
  err: (text) => process.stderr.write(text.endsWith('\n') ? text : `${text}\n`),
};

/** Exit codes of `l4fleet`: 0 ok, 1 the operation failed, 2 the command line was wrong, 3 outcome unknown. */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
/** A write was sent and etcd did not answer: it may or may not have taken effect (the message says how to check). */
export const EXIT_OUTCOME_UNKNOWN = 3;

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
