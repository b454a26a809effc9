/**
 * Why a write failed when etcd has lost its quorum. A member that lost its majority still answers Status (served
 * locally) but knows no leader, and refuses writes ("etcdserver: no leader") or lets them time out; the client only
 * sees UNAVAILABLE or a deadline from whichever endpoint it tried last. After such a failure the store asks every
 * endpoint for its Status, with the attempt deadline, and says what it found: how many answered, which of them know
 * a leader, and that writes wait for a majority (floor(n/2)+1, etcd's Raft quorum).
 *
 * A lost quorum is claimed only when a member answered without a leader. Endpoints that do not answer at all (a wrong
 * CA, port or firewall, or etcd not started) say nothing about Raft: that is "no endpoint answers", with the TLS
 * sentence when the handshake is what failed; "no quorum" there sent operators to repair a healthy cluster.
 */
import { StoreError } from './errors.js';

/** One endpoint's answer to Status. */
export interface EndpointStatus {
  readonly endpoint: string;
  /** Answered Status within the deadline. */
  readonly answered: boolean;
  /** Answered and names a leader (etcd reports leader 0 while it has none). */
  readonly hasLeader: boolean;
  /** Why it did not answer: the first line of the probe's error (absent when it answered). */
  readonly error?: string;
}

/** Longest probe error kept, in characters. */
const MAX_ERROR_CHARS = 300;

/** Status of `endpoint`: answered with a leader id, or an error (not answered). */
export type StatusProbe = (endpoint: string) => Promise<{ leader: string }>;

export async function endpointStatuses(endpoints: readonly string[], probe: StatusProbe): Promise<EndpointStatus[]> {
  return Promise.all(
    endpoints.map(async (endpoint) => {
      try {
        const { leader } = await probe(endpoint);
        return { endpoint, answered: true, hasLeader: leader !== '' && leader !== '0' };
      } catch (err) {
        const first = (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? '';
        return { endpoint, answered: false, hasLeader: false, error: first.slice(0, MAX_ERROR_CHARS) };
      }
    }),
  );
}

/** Raft's majority of `n` members. */
export function quorumOf(n: number): number {
  return Math.floor(n / 2) + 1;
}

const list = (xs: readonly EndpointStatus[]) => xs.map((s) => s.endpoint).join(', ');

/**
 * The no-quorum sentence for `statuses`, or undefined when a majority answered with a leader (the failure was
 * something else) or when no member answered without a leader (none answered, or only members that know a leader:
 * unreachableMessage's case, not a quorum question).
 */
export function noQuorumMessage(statuses: readonly EndpointStatus[]): string | undefined {
  const n = statuses.length;
  const led = statuses.filter((s) => s.hasLeader);
  const answered = statuses.filter((s) => s.answered);
  const leaderless = answered.filter((s) => !s.hasLeader);
  if (n === 0 || led.length >= quorumOf(n) || leaderless.length === 0) return undefined;
  const silent = statuses.filter((s) => !s.answered);
  const parts = [
    `${answered.length} of ${n} endpoints answered`,
    `answered: ${list(answered)} (${leaderless.length === answered.length ? 'no leader' : `no leader: ${list(leaderless)}`})`,
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
 * The sentence for endpoints that did not answer Status either, when no member answered without a leader and fewer
 * than a majority with one: the usual first-hour mistakes (etcd not started, a wrong URL or port, a firewall,
 * http:// to a TLS etcd, a CA or client certificate that does not fit), which gRPC reports only as "No connection
 * established. Last error: ...". `cause` is the failed call's message; it and each probe's error are matched for a
 * TLS failure, which gets its own sentence, since "is it running?" would send the operator the wrong way.
 */
export function unreachableMessage(statuses: readonly EndpointStatus[], cause = ''): string | undefined {
  const n = statuses.length;
  const answered = statuses.filter((s) => s.answered);
  const silent = statuses.filter((s) => !s.answered);
  if (silent.length === 0 || answered.some((s) => !s.hasLeader) || answered.length >= quorumOf(n)) return undefined;
  const tls = TLS_FAILURE.test(cause) || silent.some((s) => TLS_FAILURE.test(s.error ?? ''));
  const [only] = statuses;
  if (n === 1 && only !== undefined) {
    if (tls) {
      return (
        `etcd at ${only.endpoint}: the TLS handshake failed (check the CA that signed its certificate, and the ` +
        'client certificate and key if it asks for one)'
      );
    }
    return `etcd at ${only.endpoint} does not answer (is it running, and is that its client URL, https:// if it serves TLS?)`;
  }
  const which =
    answered.length === 0
      ? `no etcd endpoint answers (${list(silent)})`
      : `${answered.length} of ${n} etcd endpoints answers, with a leader (${list(answered)}); no answer: ${list(silent)}`;
  const advice = tls
    ? 'the TLS handshake failed (check the CA that signed the certificates, and the client certificate and key if etcd asks for one)'
    : silent.length === 1
      ? 'is it running, and is that its client URL (https:// if etcd serves TLS), reachable from here?'
      : 'are they running, and are those their client URLs (https:// if etcd serves TLS), reachable from here?';
  return `${which}: ${advice}`;
}

/** Codes a lost quorum shows up as. */
const QUORUM_SYMPTOMS: ReadonlySet<string> = new Set(['UNAVAILABLE', 'TIMEOUT', 'OUTCOME_UNKNOWN']);

/**
 * `err` with the no-quorum explanation in front when etcd has no quorum, or the unreachable one when its endpoints
 * (too many of them) do not answer; the code (and so what the caller does) stays. Any other error, or a cluster
 * whose majority answers with a leader, comes back unchanged.
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
