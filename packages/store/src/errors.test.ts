import { GRPCInvalidArgumentError, GRPCResourceExhastedError, GRPCUnavailableError } from 'etcd3';
import { describe, expect, test } from 'vitest';
import { StoreError, toStoreError } from './errors.js';

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
