/**
 * The lab CLI's stdout and stderr, which can go away under a running command (`lab watch`): the terminal hung up (an
 * ssh session that dropped, a closed window: writes fail with EIO, and the same hangup's SIGHUP stops watch, whose
 * next frame and summary then go nowhere) or a pipe's reader left (`lab watch | tee log`, tee gone: EPIPE). Node
 * reports a failed write later, as an 'error' event on the stream; with nobody listening that was an uncaught exception
 * that ended watch before it stopped its flow worker and closed its dashboard feed. Later writes to an output that went
 * away are dropped; the command ends as it would have (watch with its summary and its --check status).
 */
import { ConfigError, type LogLevelName, logLevelFromEnv } from '@l4fleet/config';
import { LabError } from './errors.js';

/** Errors that mean the reader is gone, not that the command failed. */
const GONE = new Set(['EIO', 'EPIPE']);

export interface OutputStream {
  write(text: string): unknown;
  on(event: 'error', listener: (err: NodeJS.ErrnoException) => void): unknown;
}

/** Writes each text to `stream` as one line (a newline added when missing) until the stream goes away (GONE). */
export function lineWriter(stream: OutputStream): (text: string) => void {
  let gone = false;
  let listening = false;
  return (text) => {
    // Listening from the first write, not at import: importing the CLI (its tests) leaves process.stdout as it was.
    if (!listening) {
      listening = true;
      stream.on('error', (err) => {
        if (!GONE.has(err.code ?? '')) throw err;
        gone = true;
      });
    }
    if (!gone) stream.write(text.endsWith('\n') ? text : `${text}\n`);
  };
}

/**
 * The lab's own log level: L4FLEET_LOG_LEVEL when set; else `warn` for a person at a terminal (the commands print
 * their own readable lines: a JSON log line among them, `{"level":30,...,"event":"dashboardUp"}`, read as noise),
 * `info` for a script or CI log, which keeps every event. Read as every l4fleet process reads it (logLevelFromEnv:
 * empty is unset, an unknown one is refused naming the variable); refused here as a usage error (exit 2).
 */
export function labLogLevel(env: NodeJS.ProcessEnv, stderrIsTerminal: boolean): LogLevelName {
  let asked: LogLevelName | undefined;
  try {
    asked = logLevelFromEnv(env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    throw new LabError('OPTION_INVALID', err.message, { cause: err });
  }
  return asked ?? (stderrIsTerminal ? 'warn' : 'info');
}
