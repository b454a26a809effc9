import {
  EtcdPermissionDeniedError,
  GRPCAbortedError,
  GRPCCancelledError,
  GRPCDeadlineExceededError,
  GRPCInternalError,
  GRPCUnavailableError,
  GRPCUnknownError,
} from 'etcd3';
import pino from 'pino';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { ENDPOINT_PROBE_MIN_MS, EndpointDownError, EndpointHealth, isEndpointFailure } from './endpoint-health.js';

const log = pino({ level: 'silent' });

describe('store - endpoint health', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  test('a failed endpoint is skipped until its own probe answers; a stream opening does not heal it', async () => {
    vi.useFakeTimers();
    let probeOk = false;
    let probes = 0;
    const h = new EndpointHealth(
      'http://127.0.0.1:1',
      async () => {
        probes += 1;
        if (!probeOk) throw new Error('no answer');
      },
      log,
    );
    expect(await h.execute(() => 'ok')).toBe('ok');
    await expect(
      h.execute(() => {
        throw new GRPCUnavailableError('connect ECONNREFUSED');
      }),
    ).rejects.toBeInstanceOf(GRPCUnavailableError);
    expect(h.isDown).toBe(true);
    let called = false;
    await expect(
      h.execute(() => {
        called = true; // e.g. etcd3 opening a watch stream: must not even be tried
        return 'stream';
      }),
    ).rejects.toBeInstanceOf(EndpointDownError);
    expect(called).toBe(false);
    await vi.advanceTimersByTimeAsync(ENDPOINT_PROBE_MIN_MS);
    expect(probes).toBe(1);
    expect(h.isDown).toBe(true); // the probe failed: backs off (2 s)
    probeOk = true;
    await vi.advanceTimersByTimeAsync(2 * ENDPOINT_PROBE_MIN_MS);
    expect(probes).toBe(2);
    expect(h.isDown).toBe(false);
    expect(await h.execute(() => 'again')).toBe('again');
    h.close();
  });

  test('other errors (e.g. a failed txn guard, bad auth) do not mark the endpoint down', async () => {
    const h = new EndpointHealth('http://127.0.0.1:1', async () => undefined, log);
    await expect(
      h.execute(() => {
        throw new Error('permission denied');
      }),
    ).rejects.toThrow('permission denied');
    expect(h.isDown).toBe(false);
    h.close();
  });

  test('with every endpoint down, calls go through again (the members may be electing a new leader)', async () => {
    let everyDown = false;
    const h = new EndpointHealth(
      'http://127.0.0.1:1',
      () => new Promise(() => undefined),
      log,
      () => everyDown,
    );
    await expect(
      h.execute(() => {
        throw new GRPCUnavailableError('deadline');
      }),
    ).rejects.toBeInstanceOf(GRPCUnavailableError);
    await expect(h.execute(() => 'skipped')).rejects.toBeInstanceOf(EndpointDownError);
    everyDown = true;
    expect(await h.execute(() => 'through')).toBe('through');
    h.close();
  });

  // A member restarting (GOAWAY, its streams reset) ends calls with gRPC INTERNAL "Received RST_STREAM" or CANCELLED:
  // with several endpoints the call must move to the next member (connection.ts retries what this accepts), as
  // etcd3 itself counts these as recoverable. Only a failure on the member's side counts: grpc-js's own
  // "Cancelled on client" is etcd3 closing a watch stream whose last watcher went (no fault of the endpoint).
  test.each([
    ['unreachable', new GRPCUnavailableError('14 UNAVAILABLE: No connection established'), true],
    ['past the deadline', new GRPCDeadlineExceededError('4 DEADLINE_EXCEEDED: Deadline exceeded'), true],
    [
      'stream reset (member restarting)',
      new GRPCInternalError('13 INTERNAL: Received RST_STREAM with code 2 (Internal server error)'),
      true,
    ],
    [
      'stream reset on a client error',
      new GRPCInternalError(
        '13 INTERNAL: Received RST_STREAM with code 2 triggered by internal client error: read ECONNRESET',
      ),
      true,
    ],
    ['connection dropped', new GRPCInternalError('13 INTERNAL: Connection dropped'), true],
    ['call cancelled by the member', new GRPCCancelledError('1 CANCELLED: Call cancelled'), true],
    ['unknown', new GRPCUnknownError('2 UNKNOWN: Stream removed'), true],
    ['no leader (this member is cut off)', new GRPCUnavailableError('14 UNAVAILABLE: etcdserver: no leader'), true],
    [
      'request timed out, its connection lost',
      new GRPCUnavailableError('14 UNAVAILABLE: etcdserver: request timed out, possibly due to connection lost'),
      true,
    ],
    // The cluster's state, not this member's (errors.ts isTransient): retried, the member not held down.
    ['aborted', new GRPCAbortedError('10 ABORTED: transport is closing'), false],
    ['leader changed', new GRPCUnavailableError('14 UNAVAILABLE: etcdserver: leader changed'), false],
    ['request timed out', new GRPCUnavailableError('14 UNAVAILABLE: etcdserver: request timed out'), false],
    ['too many requests', new GRPCUnknownError('2 UNKNOWN: etcdserver: too many requests'), false],
    ['cancelled by this client', new GRPCCancelledError('1 CANCELLED: Cancelled on client'), false],
    ['another INTERNAL', new GRPCInternalError('13 INTERNAL: some bug'), false],
    ['no permission', new EtcdPermissionDeniedError('7 PERMISSION_DENIED: etcdserver: permission denied'), false],
    ['a plain Error', new Error('Received RST_STREAM with code 2'), false],
  ])('%s: endpoint failure %s', (_what, err, failure) => {
    expect(isEndpointFailure(err)).toBe(failure);
  });

  // A leader change fails the calls in flight on every member alike: holding the member that answered down for a
  // probe (1 s, doubling while the election lasts) took healthy members out, and with all of them down every call
  // went through anyway. connection.ts retries these with its backoff; the same member may take the retry.
  test.each([
    ['leader changed', new GRPCUnavailableError('14 UNAVAILABLE: etcdserver: leader changed')],
    ['too many requests', new GRPCUnknownError('2 UNKNOWN: etcdserver: too many requests')],
    ['aborted', new GRPCAbortedError('10 ABORTED: something')],
  ])('a member answering %s stays up (the next call may use it)', async (_what, err) => {
    let probes = 0;
    const h = new EndpointHealth('http://127.0.0.1:1', async () => void (probes += 1), log);
    await expect(
      h.execute(() => {
        throw err;
      }),
    ).rejects.toBe(err);
    expect(h.isDown).toBe(false);
    expect(await h.execute(() => 'next')).toBe('next');
    expect(probes).toBe(0);
    h.close();
  });

  test('a member answering RST_STREAM is marked down (the next call skips it)', async () => {
    const h = new EndpointHealth('http://127.0.0.1:1', () => new Promise(() => undefined), log);
    await expect(
      h.execute(() => {
        throw new GRPCInternalError('13 INTERNAL: Received RST_STREAM with code 2 (Internal server error)');
      }),
    ).rejects.toBeInstanceOf(GRPCInternalError);
    expect(h.isDown).toBe(true);
    h.close();
  });
});
