import { EtcdLeaseInvalidError, GRPCDeadlineExceededError, type Lease } from 'etcd3';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { LeaseKeeper, RENEW_RETRY_MS } from './lease-keeper.js';

/** A lease whose renewals answer as `answer` says; records each renewal's time and deadline. */
function fakeLease(answer: () => 'ok' | 'fail' | 'expired') {
  const calls: { at: number; deadlineMs: number }[] = [];
  const lease = {
    revoked: () => false,
    keepaliveOnce: async (options: { deadline: number }) => {
      calls.push({ at: Date.now(), deadlineMs: options.deadline - Date.now() });
      const a = answer();
      if (a === 'fail') throw new GRPCDeadlineExceededError('Deadline exceeded');
      if (a === 'expired') throw new EtcdLeaseInvalidError('1');
      return { TTL: '10' };
    },
  };
  return { lease: lease as unknown as Lease, calls };
}

describe('store - lease keeper', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  test('renews every third of the TTL, each renewal with the attempt deadline', async () => {
    vi.useFakeTimers();
    const { lease, calls } = fakeLease(() => 'ok');
    const k = new LeaseKeeper(lease, { ttlS: 9, attemptMs: 2_000, onRenewFailed: vi.fn() });
    const t0 = Date.now();
    k.start();
    await vi.advanceTimersByTimeAsync(9_000);
    k.stop();
    expect(calls.map((c) => c.at - t0)).toEqual([3_000, 6_000, 9_000]);
    expect(calls.every((c) => c.deadlineMs === 2_000)).toBe(true);
  });

  test('a failed renewal is tried again after RENEW_RETRY_MS, doubling, then the pace resumes', async () => {
    vi.useFakeTimers();
    const answers = ['fail', 'fail', 'ok', 'ok'] as const;
    let i = 0;
    const { lease, calls } = fakeLease(() => answers[i++] ?? 'ok');
    const failed = vi.fn();
    const k = new LeaseKeeper(lease, { ttlS: 9, attemptMs: 2_000, onRenewFailed: failed });
    const t0 = Date.now();
    k.start();
    await vi.advanceTimersByTimeAsync(3_000 + 3 * RENEW_RETRY_MS + 3_000);
    k.stop();
    expect(calls.map((c) => c.at - t0)).toEqual([
      3_000,
      3_000 + RENEW_RETRY_MS,
      3_000 + 3 * RENEW_RETRY_MS,
      6_000 + 3 * RENEW_RETRY_MS,
    ]);
    expect(failed).toHaveBeenCalledTimes(2);
  });

  test('renewals failing for many TTLs: tried again at most every TTL/3, never given up on without etcd', async () => {
    vi.useFakeTimers();
    const { lease, calls } = fakeLease(() => 'fail');
    const k = new LeaseKeeper(lease, { ttlS: 3, attemptMs: 1_000, onRenewFailed: vi.fn() });
    const t0 = Date.now();
    k.start();
    await vi.advanceTimersByTimeAsync(30_000);
    k.stop();
    const gaps = calls.slice(1).map((c, j) => c.at - (calls[j]?.at ?? 0));
    expect(gaps.slice(0, 3)).toEqual([200, 400, 800]);
    expect(Math.max(...gaps)).toBe(1_000);
    expect((calls.at(-1)?.at ?? 0) - t0).toBeGreaterThanOrEqual(29_000);
  });

  test('etcd says the lease is gone: the keeper stops (etcd3 reports the loss itself), nothing retried', async () => {
    vi.useFakeTimers();
    const { lease, calls } = fakeLease(() => 'expired');
    const failed = vi.fn();
    const k = new LeaseKeeper(lease, { ttlS: 3, attemptMs: 1_000, onRenewFailed: failed });
    k.start();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(calls.length).toBe(1);
    expect(failed).not.toHaveBeenCalled();
  });

  test('stop() ends the renewals', async () => {
    vi.useFakeTimers();
    const { lease, calls } = fakeLease(() => 'ok');
    const k = new LeaseKeeper(lease, { ttlS: 3, attemptMs: 1_000, onRenewFailed: vi.fn() });
    k.start();
    await vi.advanceTimersByTimeAsync(1_500);
    k.stop();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(calls.length).toBe(1);
  });
});
