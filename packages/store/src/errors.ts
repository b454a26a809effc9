/**
 * StoreError: etcd and gRPC failures mapped once, here at the adapter, into codes that say whether a retry can
 * help (the etcd3 client's own typed errors, house style "map gRPC and etcd failures once").
 */
import { escapeControls } from '@l4fleet/config';
import { isBrokenCircuitError } from 'cockatiel';
import {
  ClientClosedError,
  castGrpcError,
  EtcdAuthenticationFailedError,
  EtcdInvalidAuthTokenError,
  EtcdLeaseInvalidError,
  EtcdPermissionDeniedError,
  GRPCAbortedError,
  GRPCCancelledError,
  GRPCDeadlineExceededError,
  GRPCGenericError,
  GRPCInternalError,
  GRPCResourceExhastedError,
  GRPCUnauthenticatedError,
  GRPCUnavailableError,
} from 'etcd3';

export type StoreErrorCode =
  /**
   * etcd is unreachable or restarting, or answered that a retry shortly will do (electing a leader, overloaded,
   * gRPC ABORTED: isTransient) (retryable).
   */
  | 'UNAVAILABLE'
  /** A call ran past its deadline (retryable). */
  | 'TIMEOUT'
  /** The desired state changed since it was read: apply's revision guard failed (re-read, then retry). */
  | 'CONFLICT'
  /** Wrong user/password, bad client certificate, or no permission. */
  | 'AUTH'
  /** A name or key given to the store is not valid (e.g. a node name with `/`). */
  | 'INVALID_STATE'
  /**
   * A record read from etcd does not match its schema or its own claims (sizes, counts, checksums), e.g. written by
   * hand with etcdctl; it is not used: watchers keep their last good state. The message names the key, the field and
   * the value; `key` holds the key.
   */
  | 'INVALID_RECORD'
  /**
   * A write was sent but its outcome is unknown (etcd stalled or the connection was lost after the request left):
   * it may or may not take effect. The message says how to check.
   */
  | 'OUTCOME_UNKNOWN'
  /** The watched revision was compacted away; the watch re-reads everything. */
  | 'COMPACTED'
  /** A lease expired or was revoked (node registration, health reports, leadership). */
  | 'LEASE_LOST'
  /**
   * A request exceeded etcd's size limits (--max-request-bytes, --max-txn-ops, gRPC's message size), or one record
   * is beyond the bound the store checks before sending (request-size.ts): the same request fails again.
   */
  | 'TOO_LARGE'
  /**
   * etcd's database reached its quota (--quota-backend-bytes; the NOSPACE alarm): every write is refused until an
   * operator compacts, defragments and disarms the alarm; then the same write succeeds (retryable).
   */
  | 'NO_SPACE'
  /** A named thing (node, VIP, member) does not exist. */
  | 'NOT_FOUND'
  /** This store was closed. */
  | 'CLOSED'
  /** Anything else etcd or the client reported. */
  | 'INTERNAL';

/**
 * What a StoreError means beyond its code, where callers act on the difference. `nameTaken`: node.name is held by a
 * live lease of an agent at another address (node-claim.ts claimRefusal), a CONFLICT as a fenced write that lost a
 * race is (registration-write.ts); a serving agent stops on the first (it is another node's name), retries the second.
 */
export type StoreErrorReason = 'nameTaken';

const RETRYABLE: ReadonlySet<StoreErrorCode> = new Set([
  'UNAVAILABLE',
  'TIMEOUT',
  'CONFLICT',
  'COMPACTED',
  'LEASE_LOST',
  'NO_SPACE',
]);

/** The one error type of @l4fleet/store. */
export class StoreError extends Error {
  override readonly name = 'StoreError';
  readonly code: StoreErrorCode;
  /** Whether the same call can succeed later without a change of input. */
  readonly retryable: boolean;

  /** The etcd key (relative to the layout namespace) the error is about, when there is one. */
  readonly key: string | undefined;
  /** What it means beyond the code (StoreErrorReason), when callers must tell it apart from others of its code. */
  readonly reason: StoreErrorReason | undefined;

  constructor(
    code: StoreErrorCode,
    message: string,
    options?: { cause?: unknown; key?: string; reason?: StoreErrorReason },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retryable = RETRYABLE.has(code);
    this.key = options?.key;
    this.reason = options?.reason;
  }
}

/**
 * A record read from etcd that is not used: `key: field: value is not ...` (the message names all three). An etcd
 * key holds any bytes (one written by hand under the fleet prefix): the message shows its control characters as
 * `\uXXXX`, or an ESC, CSI or newline in it reached logs and terminals raw; `key` keeps the key as it is.
 */
export function invalidRecord(key: string, message: string, cause?: unknown): StoreError {
  return new StoreError('INVALID_RECORD', `${escapeControls(key)}: ${message}`, {
    key,
    ...(cause === undefined ? {} : { cause }),
  });
}

/** grpc-js ends "No connection established" with "Resolution note: " even when it has no note. */
const EMPTY_RESOLUTION_NOTE = /\. Resolution note: ?$/;

/** One line (OpenSSL's errors end in a newline inside gRPC's message; the CLI prints one line per problem). */
function messageOf(err: unknown): string {
  const raw = err instanceof Error ? err.message : String(err);
  return raw
    .replace(/\s*\n\s*/g, ' ')
    .trim()
    .replace(EMPTY_RESOLUTION_NOTE, '');
}

/** etcd's quota alarm (ErrGRPCNoSpace, RESOURCE_EXHAUSTED). */
const NO_SPACE = /database space exceeded|NOSPACE/i;
/**
 * Sizes: etcd's ErrGRPCRequestTooLarge and ErrGRPCTooManyOps (INVALID_ARGUMENT), gRPC's message size limits
 * (RESOURCE_EXHAUSTED). etcd also answers RESOURCE_EXHAUSTED for NOSPACE and "too many requests" (overloaded): those
 * are no size, and a caller that writes the other records past a refused one must not take them as one.
 */
const TOO_LARGE = /too large|too many operations|larger than max/i;

/** What to tell the operator with a NOSPACE: what frees the space and lifts the alarm. */
const NO_SPACE_TEXT =
  "etcd's database is full (NOSPACE alarm): compact, defrag and disarm (etcdctl compact, etcdctl defrag, etcdctl alarm disarm)";

/**
 * grpc-js's words for a stream the connection took down with it (a member restarting: GOAWAY, RST_STREAM; or the
 * socket closing), in a gRPC INTERNAL. Only these INTERNALs: another one may be a bug a retry repeats.
 */
const STREAM_RESET = /RST_STREAM|Connection dropped/;

/**
 * The call ended because its connection to the member went (a restart, GOAWAY): a retry, on another member or once
 * this one is back, can help. gRPC says so with INTERNAL "Received RST_STREAM ..." or CANCELLED, which etcd3 counts
 * as recoverable too. Decided by the error's class, never by the word "cancel": etcd3's `Watcher canceled` (an
 * EtcdError) is a cancel by the server that watch.ts handles itself.
 */
export function isConnectionLoss(err: unknown): boolean {
  return err instanceof GRPCCancelledError || (err instanceof GRPCInternalError && STREAM_RESET.test(err.message));
}

/**
 * etcd's words for the cluster's passing state, in any gRPC status (rpctypes/error.go, v3rpc/util.go): a leader change
 * ("leader changed"; "raft proposal dropped" during a leader transfer, sent as UNKNOWN since etcd's map lacks it), a
 * proposal not committed in time ("request timed out", "... possibly due to previous leader failure", "... waiting
 * for the applied index took too long"), the applier behind ("too many requests", sent as UNKNOWN: etcd maps it to a
 * client-side EtcdError without a gRPC status). Not "no leader" nor "request timed out, possibly due to connection
 * lost": that member is cut off from the others, and another member answers (endpoint-health.ts holds it down).
 */
const ETCD_TRANSIENT =
  /etcdserver: (?:leader changed|too many requests|request timed out(?!, possibly due to connection lost))|raft proposal dropped/;

/**
 * A failure the same call, repeated shortly, is expected to get past, on this member or another: gRPC ABORTED ("the
 * client should retry at a higher level", gRPC's status code guide) and etcd's ETCD_TRANSIENT answers. Only gRPC
 * errors as etcd3 types them: etcd3's `Watcher canceled: ...` (an EtcdError) is a cancel watch.ts handles itself.
 * connection.ts retries these (boundedly) without holding the member down; toStoreError makes them UNAVAILABLE.
 */
export function isTransient(err: unknown): boolean {
  const e = typed(err);
  return e instanceof GRPCAbortedError || (e instanceof GRPCGenericError && ETCD_TRANSIENT.test(e.message));
}

/**
 * A raw grpc-js error (a plain Error with a numeric gRPC status code) as etcd3 would have typed it. etcd3 casts the
 * errors of unary calls, but its WatchManager hands a watch stream's error to the watchers as grpc-js made it: read
 * as it is, `7 PERMISSION_DENIED` was INTERNAL (not AUTH) and `4 DEADLINE_EXCEEDED` UNAVAILABLE (not TIMEOUT).
 */
function typed(err: unknown): unknown {
  if (err instanceof Error && err.constructor === Error && typeof (err as { code?: unknown }).code === 'number') {
    return castGrpcError(err);
  }
  return err;
}

/** Maps anything thrown by the etcd3 client into a StoreError; `op` says what was being done. */
export function toStoreError(thrown: unknown, op: string): StoreError {
  if (thrown instanceof StoreError) return thrown;
  const err = typed(thrown);
  const msg = messageOf(err);
  if (NO_SPACE.test(msg)) return new StoreError('NO_SPACE', `etcd ${op}: ${NO_SPACE_TEXT} (${msg})`, { cause: thrown });
  const code: StoreErrorCode =
    err instanceof GRPCUnavailableError || isConnectionLoss(err)
      ? 'UNAVAILABLE'
      : err instanceof GRPCDeadlineExceededError
        ? 'TIMEOUT'
        : err instanceof EtcdAuthenticationFailedError ||
            err instanceof EtcdInvalidAuthTokenError ||
            err instanceof EtcdPermissionDeniedError ||
            err instanceof GRPCUnauthenticatedError
          ? 'AUTH'
          : err instanceof EtcdLeaseInvalidError
            ? 'LEASE_LOST'
            : err instanceof ClientClosedError
              ? 'CLOSED'
              : /compacted/i.test(msg)
                ? 'COMPACTED'
                : TOO_LARGE.test(msg)
                  ? 'TOO_LARGE'
                  : // etcd overloaded ("too many requests") or another resource short for now, a leader change,
                    // ABORTED: a retry can help.
                    err instanceof GRPCResourceExhastedError || isTransient(err)
                    ? 'UNAVAILABLE'
                    : /certificate|handshake|SSL|TLS|ECONNRESET.*secure/i.test(msg)
                      ? 'AUTH'
                      : isBrokenCircuitError(err) ||
                          /No connection established|connect ECONNREFUSED|unavailable|Deadline/i.test(msg)
                        ? 'UNAVAILABLE'
                        : 'INTERNAL';
  return new StoreError(code, `etcd ${op}: ${msg}`, { cause: thrown });
}
