import { describe, expect, test } from 'vitest';
import { StoreError } from './errors.js';
import {
  type EndpointStatus,
  endpointStatuses,
  explainWriteFailure,
  noQuorumMessage,
  quorumOf,
  unreachableMessage,
} from './quorum.js';

const A = 'http://127.0.0.1:2379';
const B = 'http://127.0.0.1:12379';
const C = 'http://127.0.0.1:22379';
const led = (endpoint: string): EndpointStatus => ({ endpoint, answered: true, hasLeader: true });
const lost = (endpoint: string): EndpointStatus => ({ endpoint, answered: true, hasLeader: false });
const silent = (endpoint: string): EndpointStatus => ({ endpoint, answered: false, hasLeader: false });

describe('store quorum - the no-quorum message', () => {
  test.each([
    [1, 1],
    [2, 2],
    [3, 2],
    [5, 3],
  ])('%i members: a majority is %i', (n, q) => expect(quorumOf(n)).toBe(q));

  test('two of three dead, the third without a leader: says so, naming who answered and who did not', () => {
    expect(noQuorumMessage([silent(A), silent(B), lost(C)])).toBe(
      `the etcd cluster has no quorum (1 of 3 endpoints answered; answered: ${C} (no leader); no answer: ${A}, ${B}): ` +
        'writes are refused until a majority (2 of 3) is back; agents keep serving their last tables (fail-static)',
    );
  });

  test.each([
    ['a majority with a leader', [led(A), led(B), silent(C)]],
    ['one endpoint that does not answer (unreachable, not a quorum question)', [silent(A)]],
    ['no endpoints', []],
  ])('%s: no message', (_name, statuses) => expect(noQuorumMessage(statuses)).toBeUndefined());

  test('a write that failed without quorum: the code stays, the message explains', async () => {
    const err = new StoreError('UNAVAILABLE', 'etcd apply: 14 UNAVAILABLE: etcdserver: no leader');
    const probe = async (e: string) => {
      if (e === C) return { leader: '0' };
      throw new Error('ECONNREFUSED');
    };
    const out = (await explainWriteFailure(err, [A, B, C], probe)) as StoreError;
    expect(out.code).toBe('UNAVAILABLE');
    expect(out.retryable).toBe(true);
    expect(out.message).toMatch(/^the etcd cluster has no quorum \(1 of 3 endpoints answered;.*; etcd apply: 14/);
    expect(out.cause).toBe(err);
  });

  test('a single endpoint that does not answer: named, the code stays; one that answers: unchanged', async () => {
    const sentence = `etcd at ${A} does not answer (is it running, and is that its client URL, https:// if it serves TLS?)`;
    expect(unreachableMessage([silent(A)])).toBe(sentence);
    for (const s of [[led(A)], [lost(A)], [led(A), led(B), silent(C)], [lost(A), silent(B)], []]) {
      expect(unreachableMessage(s)).toBeUndefined();
    }
    const err = new StoreError('UNAVAILABLE', 'etcd read leader: 14 UNAVAILABLE: No connection established');
    const out = (await explainWriteFailure(err, [A], async () =>
      Promise.reject(new Error('ECONNREFUSED')),
    )) as StoreError;
    expect(out.code).toBe('UNAVAILABLE');
    expect(out.message).toBe(`${sentence}; ${err.message}`);
    expect(out.cause).toBe(err);
    expect(await explainWriteFailure(err, [A], async () => ({ leader: '8e9e05c52164694d' }))).toBe(err);
  });

  test.each([
    ['Error: unable to verify the first certificate'],
    ['error:0A000412:SSL routines:ssl3_read_bytes:sslv3 alert bad certificate'],
  ])('a single endpoint whose TLS handshake failed (%s): says TLS, not "is it running"', async (last) => {
    const err = new StoreError(
      'UNAVAILABLE',
      `etcd get: 14 UNAVAILABLE: No connection established. Last error: ${last}`,
    );
    const out = (await explainWriteFailure(err, [A], async () => Promise.reject(new Error('TLS')))) as StoreError;
    expect(out.message).toBe(
      `etcd at ${A}: the TLS handshake failed (check the CA that signed its certificate, and the client certificate ` +
        `and key if it asks for one); ${err.message}`,
    );
  });

  test('other failures and clusters with a quorum come back unchanged', async () => {
    const conflict = new StoreError('CONFLICT', 'etcd apply: the desired state changed');
    expect(await explainWriteFailure(conflict, [A], async () => ({ leader: '0' }))).toBe(conflict);
    const err = new StoreError('TIMEOUT', 'etcd apply: deadline');
    expect(await explainWriteFailure(err, [A, B, C], async () => ({ leader: '8e9e05c52164694d' }))).toBe(err);
  });

  test('the probe keeps why an endpoint did not answer', async () => {
    const statuses = await endpointStatuses([A, B], async (e) => {
      if (e === A) return { leader: '8e9e05c52164694d' };
      throw new Error('14 UNAVAILABLE: No connection established. Last error: connect ECONNREFUSED\nmore');
    });
    expect(statuses).toEqual([
      { endpoint: A, answered: true, hasLeader: true },
      {
        endpoint: B,
        answered: false,
        hasLeader: false,
        error: '14 UNAVAILABLE: No connection established. Last error: connect ECONNREFUSED',
      },
    ]);
  });
});

// Three endpoints that all failed (a wrong CA, port or firewall) said "the etcd cluster has no quorum ... writes are
// refused until a majority is back": the operator went to repair Raft on a healthy cluster.
describe('store quorum - several endpoints, none or too few answering', () => {
  const refused = new Error('14 UNAVAILABLE: No connection established. Last error: connect ECONNREFUSED');
  const badCa = new Error(
    '14 UNAVAILABLE: No connection established. Last error: Error: unable to verify the first certificate',
  );
  const err = new StoreError('UNAVAILABLE', 'etcd apply: 14 UNAVAILABLE: No connection established');

  test('none answers, the TLS handshake failed on each: says no endpoint answers, and TLS; never quorum', async () => {
    const out = (await explainWriteFailure(err, [A, B, C], async () => Promise.reject(badCa))) as StoreError;
    expect(out.code).toBe('UNAVAILABLE');
    expect(out.cause).toBe(err);
    expect(out.message).toBe(
      `no etcd endpoint answers (${A}, ${B}, ${C}): the TLS handshake failed (check the CA that signed the ` +
        `certificates, and the client certificate and key if etcd asks for one); ${err.message}`,
    );
  });

  test('none answers (refused): says no endpoint answers, with what to check; never quorum', async () => {
    const out = (await explainWriteFailure(err, [A, B, C], async () => Promise.reject(refused))) as StoreError;
    expect(out.message).toBe(
      `no etcd endpoint answers (${A}, ${B}, ${C}): are they running, and are those their client URLs ` +
        `(https:// if etcd serves TLS), reachable from here?; ${err.message}`,
    );
  });

  test('a minority answers, each with a leader: names who answered and who did not; never quorum', () => {
    const statuses = [led(A), { ...silent(B), error: refused.message }, { ...silent(C), error: refused.message }];
    expect(noQuorumMessage(statuses)).toBeUndefined();
    expect(unreachableMessage(statuses)).toBe(
      `1 of 3 etcd endpoints answers, with a leader (${A}); no answer: ${B}, ${C}: are they running, and are those ` +
        'their client URLs (https:// if etcd serves TLS), reachable from here?',
    );
  });

  test('two endpoints, the one silent named alone', () => {
    expect(unreachableMessage([led(A), silent(B)])).toBe(
      `1 of 2 etcd endpoints answers, with a leader (${A}); no answer: ${B}: is it running, and is that its client ` +
        'URL (https:// if etcd serves TLS), reachable from here?',
    );
  });

  test('one member answering without a leader is still a lost quorum', () => {
    expect(noQuorumMessage([lost(A), silent(B), silent(C)])).toMatch(/^the etcd cluster has no quorum \(1 of 3/);
    expect(noQuorumMessage([silent(A), silent(B), silent(C)])).toBeUndefined();
  });
});
