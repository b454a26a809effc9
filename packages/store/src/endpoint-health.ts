/**
 * Per-endpoint health for etcd3's `faultHandling.host`: an endpoint on which a call or a stream failed
 * (isEndpointFailure: UNAVAILABLE, DEADLINE_EXCEEDED, a member restarting; not a leader change or etcd overloaded)
 * is marked down and skipped (etcd3 then uses the next host of the call's shuffle) until a probe of its own, a
 * unary read with a deadline, answers. The probe runs after ENDPOINT_PROBE_MIN_MS, doubling to ENDPOINT_PROBE_MAX_MS
 * while the endpoint stays down. When every endpoint is down, calls go through again (a frozen leader makes the
 * other members fail too until they elect a new one).
 *
 * Why not cockatiel's circuit breaker: its half-open trial is decided by whatever call comes next, and etcd3 counts
 * opening a stream (watch, lease keepalive) as a success as soon as the stream object exists. A stream opened on a
 * frozen member (SIGSTOP: TCP connects, the HTTP/2 handshake never completes) so "heals" it and then hangs forever:
 * no deadline applies to streams and gRPC keepalive starts only on an established connection.
 */
import {
  EventEmitter,
  type IDefaultPolicyContext,
  type IFailureEvent,
  type IPolicy,
  type ISuccessEvent,
} from 'cockatiel';
import { GRPCDeadlineExceededError, GRPCUnavailableError, GRPCUnknownError } from 'etcd3';
import type { Logger } from 'pino';
import { isConnectionLoss, isTransient } from './errors.js';

/** First probe of a down endpoint, and the most the probes back off to. */
export const ENDPOINT_PROBE_MIN_MS = 1_000;
export const ENDPOINT_PROBE_MAX_MS = 30_000;

/**
 * grpc-js's status for a call this client cancelled itself: etcd3 cancels a watch stream whose last watcher closed,
 * and the stream's error reaches the endpoint's policy (markFailed). No fault of the endpoint.
 */
const CANCELLED_HERE = /Cancelled on client/;

/**
 * Errors after which another endpoint may succeed: unreachable, past the deadline, or the member going away under
 * the call (RST_STREAM, GOAWAY, cancelled by it: isConnectionLoss), and UNKNOWN, which etcd3 counts as recoverable
 * too. Only UNAVAILABLE and DEADLINE_EXCEEDED moved on before: a member restarting failed the call (a CLI command, an
 * apply) while two others were healthy. By the error's class, as etcd3 types it.
 *
 * Not the cluster's passing state (errors.ts isTransient: a leader change, etcd overloaded, ABORTED): every member
 * answers so alike for a moment, and holding the one that said it down for a probe (1 s, doubling while an election
 * lasts) took healthy members out of use. connection.ts retries those with its backoff, this member allowed.
 */
export function isEndpointFailure(err: unknown): boolean {
  if (isTransient(err)) return false;
  if (isConnectionLoss(err)) return !CANCELLED_HERE.test((err as Error).message);
  return (
    err instanceof GRPCUnavailableError || err instanceof GRPCDeadlineExceededError || err instanceof GRPCUnknownError
  );
}

/** Thrown instead of calling a down endpoint; etcd3 moves to the next host (the message maps to UNAVAILABLE). */
export class EndpointDownError extends Error {
  override readonly name = 'EndpointDownError';
  constructor(endpoint: string) {
    super(`endpoint ${endpoint} unavailable: it failed and has not answered a probe since`);
  }
}

export class EndpointHealth implements IPolicy<IDefaultPolicyContext> {
  declare readonly _altReturn: never;
  private readonly successes = new EventEmitter<ISuccessEvent>();
  private readonly failures = new EventEmitter<IFailureEvent>();
  readonly onSuccess = this.successes.addListener;
  readonly onFailure = this.failures.addListener;
  private down = false;
  private closed = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly endpoint: string,
    /** Resolves when the endpoint answers a read within its deadline. */
    private readonly probe: () => Promise<void>,
    private readonly log: Logger,
    /** True when every endpoint of the client is down: then calls go through anyway (one may be back). */
    private readonly allDown: () => boolean = () => false,
  ) {}

  get isDown(): boolean {
    return this.down;
  }

  async execute<T>(fn: (context: IDefaultPolicyContext) => PromiseLike<T> | T): Promise<T> {
    // With every endpoint down (e.g. while the members elect a new leader) skipping would fail every call at once.
    if (this.down && !this.allDown()) throw new EndpointDownError(this.endpoint);
    const started = performance.now();
    try {
      const result = await fn({ signal: new AbortController().signal });
      this.successes.emit({ duration: performance.now() - started });
      return result;
    } catch (err) {
      if (isEndpointFailure(err)) {
        this.failures.emit({ duration: performance.now() - started, handled: true, reason: { error: err as Error } });
        this.markDown((err as Error).message);
      }
      throw err;
    }
  }

  private markDown(why: string): void {
    if (this.down || this.closed) return;
    this.down = true;
    this.log.warn({ event: 'etcdEndpointDown', endpoint: this.endpoint, err: why });
    this.scheduleProbe(ENDPOINT_PROBE_MIN_MS);
  }

  private scheduleProbe(delayMs: number): void {
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.closed) return;
      this.probe().then(
        () => {
          if (this.closed) return;
          this.down = false;
          this.log.info({ event: 'etcdEndpointUp', endpoint: this.endpoint });
        },
        () => this.scheduleProbe(Math.min(ENDPOINT_PROBE_MAX_MS, delayMs * 2)),
      );
    }, delayMs);
    this.timer.unref();
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
  }
}
