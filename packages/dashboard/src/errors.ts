/** Why the dashboard refused a request, an option, or failed. Stable codes: the HTTP layer maps them to statuses. */
export type DashboardErrorCode =
  | 'OPTION_INVALID'
  | 'LISTEN_FAILED'
  | 'BAD_REQUEST'
  | 'NOT_FOUND'
  | 'CONFLICT'
  | 'WRITES_DISABLED'
  | 'UNAUTHORIZED'
  | 'FOREIGN_ORIGIN'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'ASSETS_INVALID';

/** HTTP status per code: what a browser or script sees. */
export const HTTP_STATUS: Readonly<Record<DashboardErrorCode, number>> = {
  OPTION_INVALID: 500,
  LISTEN_FAILED: 500,
  BAD_REQUEST: 400,
  NOT_FOUND: 404,
  CONFLICT: 409,
  WRITES_DISABLED: 403,
  UNAUTHORIZED: 401,
  FOREIGN_ORIGIN: 403,
  UNSUPPORTED_MEDIA_TYPE: 415,
  ASSETS_INVALID: 500,
};

/** The one error type of @l4fleet/dashboard. */
export class DashboardError extends Error {
  override readonly name = 'DashboardError';
  readonly code: DashboardErrorCode;

  constructor(code: DashboardErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
  }
}
