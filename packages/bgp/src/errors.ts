import { status as GrpcStatus } from '@grpc/grpc-js';

/** Why a BGP call failed. Stable strings: callers and tests switch on them. */
export type BgpErrorCode =
  | 'PREFIX_INVALID'
  | 'PREFIX_DUPLICATE'
  | 'NEXT_HOP_INVALID'
  | 'NEXT_HOP_FAMILY_MISMATCH'
  | 'COMMUNITY_INVALID'
  | 'MED_INVALID'
  | 'LOCAL_PREF_INVALID'
  | 'ASN_INVALID'
  | 'ROUTER_ID_INVALID'
  | 'PORT_INVALID'
  | 'PEER_ADDRESS_INVALID'
  | 'PEER_DUPLICATE'
  | 'TIMER_INVALID'
  | 'PASSWORD_INVALID'
  | 'API_ADDRESS_INVALID'
  | 'DURATION_INVALID'
  | 'GLOBAL_CONFLICT'
  | 'UNAVAILABLE'
  | 'GOBGP_REJECTED'
  | 'CLOSED';

/** The one error type of @l4fleet/bgp; `message` names the offending field and value. */
export class BgpError extends Error {
  override readonly name = 'BgpError';
  readonly code: BgpErrorCode;
  /** gRPC status code (0-16) when gobgpd answered or the channel failed; undefined for input errors. */
  readonly grpcStatus: number | undefined;
  /** True when trying again later can succeed (gobgpd down or restarting); false for bad input. */
  readonly retryable: boolean;

  constructor(
    code: BgpErrorCode,
    message: string,
    options?: { cause?: unknown; grpcStatus?: number; retryable?: boolean },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.grpcStatus = options?.grpcStatus;
    this.retryable = options?.retryable ?? false;
  }
}

/** Statuses that mean "gobgpd is not there (yet)": a retry after a reconnect can succeed. */
const UNAVAILABLE_STATUSES: ReadonlySet<number> = new Set([
  GrpcStatus.UNAVAILABLE,
  GrpcStatus.DEADLINE_EXCEEDED,
  GrpcStatus.CANCELLED,
  GrpcStatus.RESOURCE_EXHAUSTED,
]);

function isGrpcError(err: unknown): err is Error & { code: number; details?: string } {
  return err instanceof Error && typeof (err as { code?: unknown }).code === 'number';
}

/**
 * Maps a gRPC failure of `operation` (e.g. `AddPath 198.51.100.10/32`) to a BgpError, once, at the adapter.
 * gobgpd answers most refusals with status UNKNOWN and a Go error text in `details` ("nexthop not found").
 */
export function fromGrpcError(operation: string, err: unknown): BgpError {
  if (err instanceof BgpError) return err;
  if (!isGrpcError(err)) {
    return new BgpError('GOBGP_REJECTED', `gobgpd ${operation} failed: ${String(err)}`, { cause: err });
  }
  const statusName = GrpcStatus[err.code] ?? String(err.code);
  const details = err.details ?? err.message;
  if (UNAVAILABLE_STATUSES.has(err.code)) {
    return new BgpError('UNAVAILABLE', `gobgpd ${operation}: unreachable (${statusName}: ${details})`, {
      cause: err,
      grpcStatus: err.code,
      retryable: true,
    });
  }
  return new BgpError('GOBGP_REJECTED', `gobgpd ${operation}: rejected (${statusName}: ${details})`, {
    cause: err,
    grpcStatus: err.code,
    retryable: false,
  });
}
