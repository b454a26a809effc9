/** Why a program could not be run, or a pid lock taken. Stable strings: callers and tests switch on them. */
export type ProcessErrorCode = 'COMMAND_FAILED' | 'LOCK_UNREADABLE' | 'NOT_STARTED' | 'SIGNAL_FAILED' | 'TIMEOUT';

/** The one error type of @l4fleet/process; `message` names the command and what it said. */
export class ProcessError extends Error {
  override readonly name = 'ProcessError';
  readonly code: ProcessErrorCode;

  constructor(code: ProcessErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}
