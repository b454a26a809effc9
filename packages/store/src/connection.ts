/**
 * The etcd client and how it picks endpoints. etcd3 1.1.x shuffles the hosts for every call and tries the next one
 * only when a host's own policy refuses the call (an open circuit); a call that reached a dead or hung host fails,
 * and the retry that would move on is the client-wide `faultHandling.global` policy. With both disabled (as this
 * store had them, to keep etcd restarts quick), `--etcd A,B,C` failed every call that drew a dead A (issue 12).
 *
 * With two or more endpoints:
 * - each attempt has a deadline of `dialTimeoutMs` (a hung endpoint, e.g. SIGSTOP, is abandoned within it);
 * - a failed attempt (UNAVAILABLE, DEADLINE_EXCEEDED; a member restarting: RST_STREAM, CANCELLED; UNKNOWN:
 *   endpoint-health.ts isEndpointFailure; and the cluster's passing state: a leader change, etcd overloaded, ABORTED:
 *   errors.ts isTransient) is retried on the next endpoint of the call's shuffle, with a short backoff, for about
 *   callTimeoutMs in all (a frozen leader also stalls the other members until they elect a new one, ~1-2 s); every
 *   write the store makes is safe to repeat (puts of fixed values, txns guarded by revisions, and apply's pointer
 *   txn recognises its own earlier success by its generation id);
 * - an endpoint that failed is skipped until a probe of its own answers (endpoint-health.ts); one that answered a
 *   transient error is not (every member answers so during an election), and may take the retry;
 * - the stream then moves to another endpoint (below).
 * With one endpoint nothing is retried and nothing is held down: callers see failures at once (each call within
 * callTimeoutMs), and the first call after an etcd restart goes through.
 *
 * With any number of endpoints, gRPC keepalive pings find a hung endpoint under a long-lived stream (a watch) within
 * ENDPOINT_KEEPALIVE_TIME_MS + ENDPOINT_KEEPALIVE_TIMEOUT_MS: the stream fails, its watches report it and resume
 * (on another endpoint when there is one). Streams have no deadline, so without the pings a watch on a single etcd
 * that hangs (SIGSTOP, a frozen VM) never learns it, and its cancel on close() waited for ever (an agent's shutdown
 * ended by systemd's SIGKILL). A lease is not kept on such a stream: each renewal has the attempt deadline
 * (lease-keeper.ts).
 */
import { ExponentialBackoff, handleWhen, type IBackoff, noop, type RetryPolicy, retry } from 'cockatiel';
import { Etcd3, type IOptions, type Namespace } from 'etcd3';
import type { Logger } from 'pino';
import { EndpointDownError, EndpointHealth, isEndpointFailure } from './endpoint-health.js';
import { isTransient } from './errors.js';
import { DEFAULT_PREFIX, keys, layoutNamespace } from './layout.js';

export interface EtcdStoreOptions {
  /** etcd client URLs, e.g. ['http://127.0.0.1:2379']; https:// with `tls`. Several: see connection.ts. */
  readonly endpoints: readonly string[];
  /**
   * PEM CA to verify etcd (default: Node's bundled roots plus NODE_EXTRA_CA_CERTS), and the client certificate and
   * key when etcd requires them (--client-cert-auth).
   */
  readonly tls?: { readonly ca?: Buffer; readonly cert?: Buffer; readonly key?: Buffer };
  /** etcd user/password auth. */
  readonly auth?: { readonly username: string; readonly password: string };
  /** Key prefix; default `/l4fleet`. */
  readonly prefix?: string;
  /**
   * With several endpoints: an endpoint that does not answer a call within this is abandoned for the next one, in
   * ms; default DEFAULT_DIAL_TIMEOUT_MS (2,000). Unused with one endpoint (callTimeoutMs bounds the call).
   */
  readonly dialTimeoutMs?: number;
  /** Deadline of each unary call, in ms; default 10,000 (streams have none). */
  readonly callTimeoutMs?: number;
  readonly logger: Logger;
}

/**
 * 2 s: over 100x a normal call on a loaded machine (apply p99 13 ms, a 100 VIP x 1,000 member read 231 ms over many
 * calls: packages/store README), and short enough that a command drawing a hung endpoint still answers within a few
 * seconds. The agent's etcd.dialTimeoutMs defaults to this.
 */
export const DEFAULT_DIAL_TIMEOUT_MS = 2_000;
export const DEFAULT_CALL_TIMEOUT_MS = 10_000;
/** Pause before a call moves to the next endpoint, doubling per attempt up to the max. */
const RETRY_BACKOFF_MIN_MS = 100;
const RETRY_BACKOFF_MAX_MS = 1_000;
/**
 * gRPC keepalive ping interval on a connection with open streams. etcd refuses pings more often than its
 * --grpc-keepalive-min-time (default 5 s) with GOAWAY too_many_pings, so not below 5 s.
 */
export const ENDPOINT_KEEPALIVE_TIME_MS = 5_000;
/** A ping unanswered this long closes the connection (its streams fail over). */
export const ENDPOINT_KEEPALIVE_TIMEOUT_MS = 1_000;
/** gRPC's 4 MiB default receive limit is below a large generation read; etcd sends up to its own limits. */
const MAX_RECEIVE_BYTES = 64 * 1024 * 1024;

/**
 * Worth another attempt: an endpoint failed, every endpoint is held down right now (one will be tried again), or the
 * cluster answered with its passing state (a leader change, overloaded, ABORTED).
 */
function isRetryable(err: Error): boolean {
  return isEndpointFailure(err) || isTransient(err) || err instanceof EndpointDownError;
}

/**
 * etcd3's `faultHandling.global` with several endpoints: each attempt takes the next endpoint of the call's shuffle.
 * Bounded whatever the error: about callTimeoutMs in all (each attempt is bounded by attemptMs), at least one attempt
 * per endpoint; then the caller gets the last error (a transient one as a retryable StoreError: its own loop, with
 * its own backoff, decides whether to go on).
 */
export function endpointRetry(o: { endpoints: number; callTimeoutMs: number; attemptMs: number }): RetryPolicy {
  return retry(handleWhen(isRetryable), {
    maxAttempts: Math.max(o.endpoints, Math.floor(o.callTimeoutMs / o.attemptMs)) - 1,
    backoff: new ExponentialBackoff({ initialDelay: RETRY_BACKOFF_MIN_MS, maxDelay: RETRY_BACKOFF_MAX_MS }),
  });
}

export interface Connection {
  readonly client: Etcd3;
  /** Namespace of layout v1: `${prefix}/v1/`. */
  readonly ns: Namespace;
  /** Stops the endpoint probes and closes the client. */
  close(): void;
  /** Status of one endpoint alone (its own client, the attempt deadline); quorum.ts reads the leader from it. */
  status(endpoint: string): Promise<{ leader: string }>;
  /** Deadline of one attempt on one endpoint, in ms (a lease renewal's too: lease-keeper.ts). */
  readonly attemptMs: number;
}

/**
 * etcd3's `credentials` (grpc-js createSsl) for `tls`; none without it. Without `tls.ca` the root certificate is
 * left out: grpc-js then trusts its default roots (Node's bundled ones, plus NODE_EXTRA_CA_CERTS) only for a null or
 * absent one; an empty buffer trusted no root, and every handshake failed. etcd3 types it required; grpc-js does not.
 */
export function etcdCredentials(tls: EtcdStoreOptions['tls']): IOptions['credentials'] {
  if (!tls) return undefined;
  return {
    ...(tls.ca ? { rootCertificate: tls.ca } : {}),
    ...(tls.cert ? { certChain: tls.cert } : {}),
    ...(tls.key ? { privateKey: tls.key } : {}),
  } as IOptions['credentials'];
}

export function connect(options: EtcdStoreOptions): Connection {
  const hosts = [...options.endpoints];
  const several = hosts.length > 1;
  const callTimeoutMs = options.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
  const attemptMs = several ? Math.min(callTimeoutMs, options.dialTimeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS) : callTimeoutMs;
  const log = options.logger.child({ component: 'store' });
  const etcdOptions: IOptions = {
    hosts,
    grpcOptions: {
      'grpc.max_receive_message_length': MAX_RECEIVE_BYTES,
      'grpc.keepalive_time_ms': ENDPOINT_KEEPALIVE_TIME_MS,
      'grpc.keepalive_timeout_ms': ENDPOINT_KEEPALIVE_TIMEOUT_MS,
      'grpc.keepalive_permit_without_calls': 0,
    },
    // Streams (watch, lease keepalive) live for the process; unary calls get a deadline per attempt.
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + attemptMs }),
    faultHandling: {
      host: several
        ? (host) => {
            const health = new EndpointHealth(
              host,
              () => probe(host),
              log,
              () => healths.every((h) => h.isDown),
            );
            healths.push(health);
            return health;
          }
        : () => noop,
      global: several ? endpointRetry({ endpoints: hosts.length, callTimeoutMs, attemptMs }) : noop,
      // etcd3 calls .next() on this itself (its typing says IBackoff, its code wants the factory).
      watchBackoff: new ExponentialBackoff({ initialDelay: 100, maxDelay: 2_000 }) as unknown as IBackoff<unknown>,
    },
  };
  const credentials = etcdCredentials(options.tls);
  if (credentials) etcdOptions.credentials = credentials;
  if (options.auth) etcdOptions.auth = { username: options.auth.username, password: options.auth.password };
  const namespace = layoutNamespace(options.prefix ?? DEFAULT_PREFIX);
  const healths: EndpointHealth[] = [];
  /** One linearizable read on `host` alone, with the attempt deadline (a member without a leader fails it). */
  const probe = async (host: string): Promise<void> => {
    const single = new Etcd3({
      ...etcdOptions,
      hosts: [host],
      faultHandling: { host: () => noop, global: noop },
    });
    try {
      await single.namespace(namespace).get(keys.pointer).exec();
    } finally {
      single.close();
    }
  };
  const client = new Etcd3(etcdOptions);
  const status = async (host: string): Promise<{ leader: string }> => {
    const single = new Etcd3({
      ...etcdOptions,
      hosts: [host],
      defaultCallOptions: () => ({ deadline: Date.now() + Math.min(attemptMs, DEFAULT_DIAL_TIMEOUT_MS) }),
      faultHandling: { host: () => noop, global: noop },
    });
    try {
      return { leader: String((await single.maintenance.status()).leader ?? '') };
    } finally {
      single.close();
    }
  };
  return {
    client,
    status,
    attemptMs,
    ns: client.namespace(namespace),
    close: () => {
      for (const h of healths) h.close();
      client.close();
    },
  };
}
