/** Why a Maglev call refused its input. Stable strings: callers and tests switch on them. */
export type MaglevErrorCode =
  | 'TABLE_SIZE_INVALID'
  | 'TOO_MANY_BACKENDS'
  | 'BACKEND_NAME_INVALID'
  | 'BACKEND_NAME_DUPLICATE'
  | 'BACKEND_WEIGHT_INVALID'
  | 'ADDRESS_INVALID'
  | 'PORT_INVALID'
  | 'FLOW_FAMILY_MISMATCH'
  | 'SEED_INVALID'
  | 'TABLE_MISMATCH';

/** The one error type of @l4fleet/maglev; `message` names the offending field and value. */
export class MaglevError extends Error {
  override readonly name = 'MaglevError';
  readonly code: MaglevErrorCode;

  constructor(code: MaglevErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}
