import { GRPCUnavailableError } from 'etcd3';
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
