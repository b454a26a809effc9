/**
 * Why a write failed when etcd has lost its quorum. A member that lost its majority still answers Status (served
 * locally) but knows no leader, and refuses writes ("etcdserver: no leader") or lets them time out; the client only
 * sees UNAVAILABLE or a deadline from whichever endpoint it tried last. After such a failure the store asks every
 * endpoint for its Status, with the attempt deadline, and says what it found: how many answered, which of them know
 * a leader, and that writes wait for a majority (floor(n/2)+1, etcd's Raft quorum).
 */
import { StoreError } from './errors.js';

/** One endpoint's answer to Status. */
export interface EndpointStatus {
  readonly endpoint: string;
  /** Answered Status within the deadline. */
  readonly answered: boolean;
  /** Answered and names a leader (etcd reports leader 0 while it has none). */
  readonly hasLeader: boolean;
}

/** Status of `endpoint`: answered with a leader id, or an error (not answered). */
export type StatusProbe = (endpoint: string) => Promise<{ leader: string }>;

export async function endpointStatuses(endpoints: readonly string[], probe: StatusProbe): Promise<EndpointStatus[]> {
  return Promise.all(
    endpoints.map(async (endpoint) => {
      try {
        const { leader } = await probe(endpoint);
        return { endpoint, answered: true, hasLeader: leader !== '' && leader !== '0' };
      } catch {
        return { endpoint, answered: false, hasLeader: false };
      }
    }),
  );
}

/** Raft's majority of `n` members. */
export function quorumOf(n: number): number {
  return Math.floor(n / 2) + 1;
}

/**
 * The no-quorum sentence for `statuses`, or undefined when a majority answered with a leader (the failure was
 * something else) or when a single endpoint simply did not answer (unreachable, not a quorum question).
 */
export function noQuorumMessage(statuses: readonly EndpointStatus[]): string | undefined {
  const n = statuses.length;
  const led = statuses.filter((s) => s.hasLeader);
  const answered = statuses.filter((s) => s.answered);
  if (n === 0 || led.length >= quorumOf(n)) return undefined;
  if (n === 1 && answered.length === 0) return undefined;
  const list = (xs: readonly EndpointStatus[]) => xs.map((s) => s.endpoint).join(', ');
  const leaderless = answered.filter((s) => !s.hasLeader);
  const silent = statuses.filter((s) => !s.answered);
  const parts = [
    `${answered.length} of ${n} endpoints answered`,
    ...(answered.length > 0
      ? [
          `answered: ${list(answered)}${leaderless.length > 0 ? ` (${leaderless.length === answered.length ? 'no leader' : `no leader: ${list(leaderless)}`})` : ''}`,
        ]
      : []),
    ...(silent.length > 0 ? [`no answer: ${list(silent)}`] : []),
  ];
  return (
    `the etcd cluster has no quorum (${parts.join('; ')}): writes are refused until a majority ` +
    `(${quorumOf(n)} of ${n}) is back; agents keep serving their last tables (fail-static)`
  );
}

/** What gRPC's error says when the connection got as far as TLS and failed there (CA, client certificate). */
const TLS_FAILURE = /certificate|SSL routines|SSL alert|handshake/i;

/**
 * The sentence for a single endpoint that did not answer Status either: the usual first-hour mistakes (etcd not
 * started, a wrong URL, http:// to a TLS etcd, a CA or client certificate that does not fit), which gRPC reports only
 * as "No connection established. Last error: ...". `cause` is the failed call's message: a TLS failure gets its own
 * sentence, since "is it running?" would send the operator the wrong way.
 */
export function unreachableMessage(statuses: readonly EndpointStatus[], cause = ''): string | undefined {
  const [only] = statuses;
  if (statuses.length !== 1 || only === undefined || only.answered) return undefined;
  if (TLS_FAILURE.test(cause)) {
    return (
      `etcd at ${only.endpoint}: the TLS handshake failed (check the CA that signed its certificate, and the ` +
      'client certificate and key if it asks for one)'
    );
  }
  return `etcd at ${only.endpoint} does not answer (is it running, and is that its client URL, https:// if it serves TLS?)`;
}

/** Codes a lost quorum shows up as. */
const QUORUM_SYMPTOMS: ReadonlySet<string> = new Set(['UNAVAILABLE', 'TIMEOUT', 'OUTCOME_UNKNOWN']);

/**
 * `err` with the no-quorum explanation in front when etcd has no quorum, or the unreachable one when its single
 * endpoint does not answer; the code (and so what the caller does) stays. Any other error, or a cluster with its
 * quorum, comes back unchanged.
 */
export async function explainWriteFailure(
  err: unknown,
  endpoints: readonly string[],
  probe: StatusProbe,
): Promise<unknown> {
  if (!(err instanceof StoreError) || !QUORUM_SYMPTOMS.has(err.code)) return err;
  const statuses = await endpointStatuses(endpoints, probe);
  const why = noQuorumMessage(statuses) ?? unreachableMessage(statuses, err.message);
  if (!why) return err;
  const out = new StoreError(err.code, `${why}; ${err.message}`, {
    cause: err,
    ...(err.key === undefined ? {} : { key: err.key }),
  });
  return out;
}
