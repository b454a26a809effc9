import {
  EtcdPermissionDeniedError,
  GRPCAbortedError,
  GRPCInternalError,
  GRPCResourceExhastedError,
  GRPCUnavailableError,
  GRPCUnknownError,
} from 'etcd3';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { endpointRetry, etcdCredentials } from './connection.js';

describe('connection - TLS credentials handed to etcd3 (grpc-js createSsl)', () => {
  // grpc-js falls back to its default roots (Node's, plus NODE_EXTRA_CA_CERTS) only for a null or absent root
  // certificate: an empty buffer trusted no root at all, so etcd.tls without `ca` failed every handshake.
  test('without a CA: no root certificate, so the default roots apply', () => {
    const cert = Buffer.from('client certificate');
    const key = Buffer.from('client key');
    const creds = etcdCredentials({ cert, key });
    expect(creds?.rootCertificate ?? undefined).toBeUndefined();
    expect(creds).toMatchObject({ certChain: cert, privateKey: key });
    expect(etcdCredentials({})?.rootCertificate ?? undefined).toBeUndefined();
  });

  test('with a CA: that CA alone; without tls: no credentials (plain http://)', () => {
    const ca = Buffer.from('etcd CA');
    expect(etcdCredentials({ ca })).toEqual({ rootCertificate: ca });
    expect(etcdCredentials(undefined)).toBeUndefined();
  });
});

describe('connection - the retry of a call across endpoints (several endpoints)', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  /** Runs `fail` on every attempt of the policy for 3 endpoints, 10 s per call, 2 s per attempt; counts attempts. */
  async function attemptsUntilGivenUp(fail: Error): Promise<number> {
    vi.useFakeTimers();
    const policy = endpointRetry({ endpoints: 3, callTimeoutMs: 10_000, attemptMs: 2_000 });
    let attempts = 0;
    const call = policy.execute(() => {
      attempts += 1;
      throw fail;
    });
    const settled = expect(call).rejects.toBe(fail);
    await vi.runAllTimersAsync();
    await settled;
    return attempts;
  }

  // A transient answer (errors.ts isTransient) is retried with the same backoff as an endpoint failure, and as
  // boundedly: about callTimeoutMs / attemptMs attempts (5 here), then the caller gets the last error. Never a loop.
  test.each([
    ['ABORTED', new GRPCAbortedError('10 ABORTED: something')],
    ['leader changed', new GRPCUnavailableError('14 UNAVAILABLE: etcdserver: leader changed')],
    ['too many requests, as etcd sends it', new GRPCUnknownError('2 UNKNOWN: etcdserver: too many requests')],
    [
      'too many requests, RESOURCE_EXHAUSTED',
      new GRPCResourceExhastedError('8 RESOURCE_EXHAUSTED: etcdserver: too many requests'),
    ],
    ['a genuine UNKNOWN (an endpoint failure, as before)', new GRPCUnknownError('2 UNKNOWN: something')],
    ['unreachable', new GRPCUnavailableError('14 UNAVAILABLE: No connection established')],
  ])('%s on every attempt: 5 attempts, then that error', async (_what, err) => {
    expect(await attemptsUntilGivenUp(err)).toBe(5);
  });

  test.each([
    ['a bug (INTERNAL)', new GRPCInternalError('13 INTERNAL: some bug')],
    ['no permission', new EtcdPermissionDeniedError('7 PERMISSION_DENIED: etcdserver: permission denied')],
    [
      'etcd full (NOSPACE)',
      new GRPCResourceExhastedError('8 RESOURCE_EXHAUSTED: etcdserver: mvcc: database space exceeded'),
    ],
  ])('%s: one attempt (no retry helps it at once)', async (_what, err) => {
    expect(await attemptsUntilGivenUp(err)).toBe(1);
  });

  test('a leader change, then an answer: the retry answers', async () => {
    vi.useFakeTimers();
    const policy = endpointRetry({ endpoints: 3, callTimeoutMs: 10_000, attemptMs: 2_000 });
    let attempts = 0;
    const call = policy.execute(() => {
      attempts += 1;
      if (attempts === 1) throw new GRPCUnavailableError('14 UNAVAILABLE: etcdserver: leader changed');
      return 'value';
    });
    await vi.runAllTimersAsync();
    expect(await call).toBe('value');
    expect(attempts).toBe(2);
  });
});
