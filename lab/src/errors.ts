/** Why a lab operation failed. Stable strings: callers and tests switch on them. */
export type LabErrorCode =
  | 'OPTION_INVALID'
  | 'HOST_UNKNOWN'
  | 'NOT_ROOT'
  | 'COMMAND_FAILED'
  | 'TIMEOUT'
  | 'STATE_INVALID'
  | 'LAB_NOT_RUNNING'
  | 'RUNTIME_UNSUPPORTED'
  | 'BPF_UNAVAILABLE'
  | 'CHECK_FAILED'
  | 'INTERRUPTED';

/** The one error type of @l4fleet/lab; `message` names the offending field, host or command. */
export class LabError extends Error {
  override readonly name = 'LabError';
  readonly code: LabErrorCode;

  constructor(code: LabErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}
