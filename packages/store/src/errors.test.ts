import {
  EtcdError,
  GRPCAbortedError,
  GRPCCancelledError,
  GRPCInternalError,
  GRPCInvalidArgumentError,
  GRPCResourceExhastedError,
  GRPCUnavailableError,
  GRPCUnknownError,
} from 'etcd3';
import { describe, expect, test } from 'vitest';
import { invalidRecord, isTransient, StoreError, toStoreError } from './errors.js';

describe('store errors - toStoreError', () => {
  test("gRPC's unreachable error: UNAVAILABLE, the operation named, without grpc-js's empty 'Resolution note:'", () => {
    const raw = new GRPCUnavailableError(
      '14 UNAVAILABLE: No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:1. Resolution note: ',
    );
    const err = toStoreError(raw, 'read leader');
    expect(err.code).toBe('UNAVAILABLE');
    expect(err.message).toBe(
      'etcd read leader: 14 UNAVAILABLE: No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:1',
    );
    expect(err.cause).toBe(raw);
  });

  test("OpenSSL's newline inside gRPC's message: one line", () => {
    const raw = new GRPCUnavailableError(
      '14 UNAVAILABLE: No connection established. Last error: 80AC:error:0A000412:SSL routines::sslv3 alert bad ' +
        'certificate:rec_layer_s3.c:1601:SSL alert number 42\n (2026-12-04T15:51:50.480Z). Resolution note: ',
    );
    expect(toStoreError(raw, 'get').message).toBe(
      'etcd get: 14 UNAVAILABLE: No connection established. Last error: 80AC:error:0A000412:SSL routines::sslv3 alert ' +
        'bad certificate:rec_layer_s3.c:1601:SSL alert number 42 (2026-12-04T15:51:50.480Z)',
    );
  });

  test('a resolution note with text is kept; a StoreError comes back as it is', () => {
    const raw = new Error('14 UNAVAILABLE: No connection established. Resolution note: DNS lookup failed');
    expect(toStoreError(raw, 'get').message).toBe(`etcd get: ${raw.message}`);
    const mine = new StoreError('CONFLICT', 'etcd apply: changed');
    expect(toStoreError(mine, 'apply')).toBe(mine);
  });
});

describe('store errors - RESOURCE_EXHAUSTED is not always a size', () => {
  test("etcd's NOSPACE alarm: NO_SPACE, retryable, saying what frees it; not TOO_LARGE", () => {
    const raw = new GRPCResourceExhastedError('8 RESOURCE_EXHAUSTED: etcdserver: mvcc: database space exceeded');
    const err = toStoreError(raw, 'write decided status');
    expect(err.code).toBe('NO_SPACE');
    expect(err.retryable).toBe(true);
    expect(err.message).toBe(
      "etcd write decided status: etcd's database is full (NOSPACE alarm): compact, defrag and disarm " +
        '(etcdctl compact, etcdctl defrag, etcdctl alarm disarm) (8 RESOURCE_EXHAUSTED: etcdserver: mvcc: database space exceeded)',
    );
    expect(err.cause).toBe(raw);
  });

  test.each([
    [
      'etcd overloaded',
      new GRPCResourceExhastedError('8 RESOURCE_EXHAUSTED: etcdserver: too many requests'),
      'UNAVAILABLE',
    ],
    [
      'another exhausted resource',
      new GRPCResourceExhastedError('8 RESOURCE_EXHAUSTED: Bandwidth exhausted'),
      'UNAVAILABLE',
    ],
    [
      "etcd's --max-request-bytes",
      new GRPCInvalidArgumentError('3 INVALID_ARGUMENT: etcdserver: request is too large'),
      'TOO_LARGE',
    ],
    [
      "etcd's --max-txn-ops",
      new GRPCInvalidArgumentError('etcdserver: too many operations in txn request'),
      'TOO_LARGE',
    ],
    [
      "gRPC's receive limit",
      new GRPCResourceExhastedError('8 RESOURCE_EXHAUSTED: Received message larger than max (2097160 vs 2097152)'),
      'TOO_LARGE',
    ],
  ])('%s: %s', (_what, raw, code) => {
    expect(toStoreError(raw, 'put').code).toBe(code);
  });
});

describe('store errors - a member restarting', () => {
  // etcd going away mid-call (GOAWAY, its streams reset) ends the call with gRPC INTERNAL "Received RST_STREAM" or
  // CANCELLED: a retry (on another member, or once it is back) can help, as with UNAVAILABLE.
  test.each([
    ['stream reset', new GRPCInternalError('13 INTERNAL: Received RST_STREAM with code 2 (Internal server error)')],
    [
      'stream reset on a client error',
      new GRPCInternalError('Received RST_STREAM with code 2 triggered by internal client error: read ECONNRESET'),
    ],
    ['connection dropped', new GRPCInternalError('13 INTERNAL: Connection dropped')],
    ['call cancelled', new GRPCCancelledError('1 CANCELLED: Call cancelled')],
  ])('%s: UNAVAILABLE, retryable', (_what, raw) => {
    const err = toStoreError(raw, 'get');
    expect(err.code).toBe('UNAVAILABLE');
    expect(err.retryable).toBe(true);
    expect(err.cause).toBe(raw);
  });

  // The class decides, not the word: watch.ts restarts a watch on etcd3's `Watcher canceled` (an EtcdError), which
  // must stay INTERNAL; other INTERNAL and UNKNOWN answers say nothing of a restart.
  test.each([
    ['a cancel of a watch by the server', new EtcdError('Watcher canceled: ')],
    ['the same, uncast', new Error('Watcher canceled: ')],
    ['another INTERNAL', new GRPCInternalError('13 INTERNAL: grpc: error unmarshalling request')],
    ['UNKNOWN', new GRPCUnknownError('2 UNKNOWN: something')],
  ])('%s: INTERNAL', (_what, raw) => {
    expect(toStoreError(raw, 'watch').code).toBe('INTERNAL');
  });
});

describe('store errors - etcd electing a leader or overloaded: transient', () => {
  // gRPC's status code guide: ABORTED is "typically a concurrency issue ... the client should retry at a higher
  // level". etcd answers a leader change, a proposal that did not commit in time and an applier falling behind with
  // these words; etcd's own map sends "too many requests" as UNKNOWN (its EtcdError has no gRPC status), and a raft
  // proposal dropped in a leader transfer is not in the map at all (UNKNOWN). Read as INTERNAL, a CLI apply failed
  // as a bug and callers that go by `retryable` gave up on what a retry a moment later settles.
  test.each([
    ['ABORTED', new GRPCAbortedError('10 ABORTED: something')],
    ['too many requests, as etcd sends it', new GRPCUnknownError('2 UNKNOWN: etcdserver: too many requests')],
    [
      'too many requests, RESOURCE_EXHAUSTED',
      new GRPCResourceExhastedError('8 RESOURCE_EXHAUSTED: etcdserver: too many requests'),
    ],
    ['leader changed, UNKNOWN', new GRPCUnknownError('2 UNKNOWN: etcdserver: leader changed')],
    ['leader changed, UNAVAILABLE', new GRPCUnavailableError('14 UNAVAILABLE: etcdserver: leader changed')],
    ['request timed out, UNKNOWN', new GRPCUnknownError('2 UNKNOWN: etcdserver: request timed out')],
    [
      'request timed out after a leader failure',
      new GRPCUnknownError('2 UNKNOWN: etcdserver: request timed out, possibly due to previous leader failure'),
    ],
    ['raft proposal dropped (leader transfer)', new GRPCUnknownError('2 UNKNOWN: raft proposal dropped')],
    ['ABORTED on a watch stream (raw grpc-js)', rawGrpcError(10, '10 ABORTED: something')],
    ['leader changed on a watch stream (raw grpc-js)', rawGrpcError(2, '2 UNKNOWN: etcdserver: leader changed')],
  ])('%s: UNAVAILABLE, retryable, transient', (_what, raw) => {
    const err = toStoreError(raw, 'apply');
    expect(err.code).toBe('UNAVAILABLE');
    expect(err.retryable).toBe(true);
    expect(err.message).toBe(`etcd apply: ${raw.message}`);
    expect(err.cause).toBe(raw);
    expect(isTransient(raw)).toBe(true);
  });

  // Not transient: a genuine UNKNOWN (as before, INTERNAL), and what is one member's fault (no leader: it is cut off
  // from the others; its connection to them lost), which endpoint-health.ts holds down so calls go elsewhere.
  test.each([
    ['a genuine UNKNOWN', new GRPCUnknownError('2 UNKNOWN: something'), 'INTERNAL'],
    ['no leader', new GRPCUnavailableError('14 UNAVAILABLE: etcdserver: no leader'), 'UNAVAILABLE'],
    [
      'request timed out, connection lost',
      new GRPCUnavailableError('14 UNAVAILABLE: etcdserver: request timed out, possibly due to connection lost'),
      'UNAVAILABLE',
    ],
    ['unreachable', new GRPCUnavailableError('14 UNAVAILABLE: No connection established'), 'UNAVAILABLE'],
    [
      'the words in a watch cancel (an EtcdError)',
      new EtcdError('Watcher canceled: etcdserver: leader changed'),
      'INTERNAL',
    ],
    ['the words in a plain Error', new Error('etcdserver: too many requests'), 'INTERNAL'],
  ])('%s: not transient (%s)', (_what, raw, code) => {
    expect(isTransient(raw)).toBe(false);
    expect(toStoreError(raw, 'get').code).toBe(code);
  });
});

/** What grpc-js hands etcd3's WatchManager, which emits it to the watchers as it is (no castGrpcError). */
function rawGrpcError(code: number, message: string): Error {
  return Object.assign(new Error(message), { code, details: message.replace(/^\d+ \w+: /, '') });
}

describe('store errors - raw grpc-js errors (watch streams)', () => {
  test.each([
    ['no permission', rawGrpcError(7, '7 PERMISSION_DENIED: etcdserver: permission denied'), 'AUTH'],
    ['not authenticated', rawGrpcError(16, '16 UNAUTHENTICATED: etcdserver: invalid auth token'), 'AUTH'],
    ['past the deadline', rawGrpcError(4, '4 DEADLINE_EXCEEDED: Deadline exceeded'), 'TIMEOUT'],
    ['bandwidth', rawGrpcError(8, '8 RESOURCE_EXHAUSTED: Bandwidth exhausted or memory limit exceeded'), 'UNAVAILABLE'],
    ['unreachable', rawGrpcError(14, '14 UNAVAILABLE: Connection dropped'), 'UNAVAILABLE'],
    [
      'stream reset',
      rawGrpcError(13, '13 INTERNAL: Received RST_STREAM with code 2 (Internal server error)'),
      'UNAVAILABLE',
    ],
    ['another INTERNAL', rawGrpcError(13, '13 INTERNAL: some bug'), 'INTERNAL'],
  ])('%s: %s', (_what, raw, code) => {
    const err = toStoreError(raw, 'watch');
    expect(err.code).toBe(code);
    expect(err.message).toBe(`etcd watch: ${raw.message}`);
  });

  test('a Node error with a string code is not taken for gRPC', () => {
    const raw = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:2379'), { code: 'ECONNREFUSED' });
    expect(toStoreError(raw, 'get').code).toBe('UNAVAILABLE');
    const other = Object.assign(new Error('7 is a number'), { code: 'EPERM' });
    expect(toStoreError(other, 'get').code).toBe('INTERNAL');
  });
});

describe('store errors - invalidRecord', () => {
  // An etcd key holds any bytes (a hand-written key under the fleet prefix): raw at the start of the message, an ESC,
  // CSI or newline in it reached agent logs and l4fleet's errors.
  test('control characters in the key are escaped as \\uXXXX in the message; err.key keeps the key as it is', () => {
    const key = '/l4fleet/nodes/a\u001b]0;x\u0007\u009b2J\u007f\nforged';
    const err = invalidRecord(key, 'key: "..." is not a node name');
    expect(err.code).toBe('INVALID_RECORD');
    expect(err.key).toBe(key);
    expect(err.message).toBe(
      '/l4fleet/nodes/a\\u001b]0;x\\u0007\\u009b2J\\u007f\\u000aforged: key: "..." is not a node name',
    );
    expect(err.message).not.toMatch(/\p{Cc}/u);
  });

  test('a key without control characters is shown as it is', () => {
    expect(invalidRecord('/l4fleet/nodes/lb1', 'name: 1 is not a string').message).toBe(
      '/l4fleet/nodes/lb1: name: 1 is not a string',
    );
  });
});
