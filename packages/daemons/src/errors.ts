/** Why a launcher refused. Stable strings: callers and tests switch on them. */
export type DaemonErrorCode =
  /** A config value that would break (or inject lines into) the daemon's config text. */
  | 'INVALID_CONFIG'
  /** A handle used after stop(): its directory is gone, so nothing is started again. */
  | 'STOPPED';

/** The error of @l4fleet/daemons' own checks; a daemon that fails to start reports @l4fleet/process's ProcessError. */
export class DaemonError extends Error {
  override readonly name = 'DaemonError';
  readonly code: DaemonErrorCode;

  constructor(code: DaemonErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}
