import type { HealthCheck } from '@l4fleet/config';
import { MAX_PROBE_FAILURES_PER_STATUS } from '@l4fleet/store';
import pino from 'pino';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { createHealthChecker, type HealthObservation, MAX_PROBE_REASON_CHARS, probeFailuresReport } from './checker.js';
import type { Probe } from './probe.js';

const logger = pino({ level: 'silent' });
const check: HealthCheck = { type: 'tcp', intervalMs: 1_000, timeoutMs: 500, rise: 2, fall: 3 };

afterEach(() => {
  vi.useRealTimers();
});

describe('health checker - scheduling and hysteresis', () => {
  test('a member that starts failing is down after fall intervals, and up again after rise', async () => {
    vi.useFakeTimers();
    let healthy = true;
    const probe: Probe = async () => ({ ok: healthy, latencyMs: 1 });
    const seen: HealthObservation[] = [];
    const c = createHealthChecker({ probe, logger, onObservation: (o) => seen.push(o) });
    c.setTargets([{ key: 'web/a', address: '127.0.0.1', port: 80, check }]);
    await vi.advanceTimersByTimeAsync(2_600);
    expect(c.observed().get('web/a')).toBe('up');
    healthy = false;
    const failedAt = Date.now();
    while (c.observed().get('web/a') !== 'down') await vi.advanceTimersByTimeAsync(100);
    // fall = 3 probes at 1 s interval: down within interval x fall
    expect(Date.now() - failedAt).toBeLessThanOrEqual(check.intervalMs * check.fall);
    healthy = true;
    await vi.advanceTimersByTimeAsync(2_000);
    expect(c.observed().get('web/a')).toBe('up');
    expect(seen.filter((o) => o.changed).map((o) => o.status)).toEqual(['up', 'down', 'up']);
    c.close();
  });

  test('setTargets keeps the state of unchanged targets and resets changed ones', async () => {
    vi.useFakeTimers();
    const probe: Probe = async () => ({ ok: true, latencyMs: 1 });
    const c = createHealthChecker({ probe, logger, onObservation: () => undefined });
    const a = { key: 'web/a', address: '127.0.0.1', port: 80, check };
    const b = { key: 'web/b', address: '127.0.0.2', port: 80, check };
    c.setTargets([a, b]);
    await vi.advanceTimersByTimeAsync(3_000);
    c.setTargets([
      a,
      { ...b, port: 81 },
      { key: 'none/x', address: '127.0.0.3', port: 1, check: { ...check, type: 'none' } },
    ]);
    expect(Object.fromEntries(c.observed())).toEqual({ 'web/a': 'up', 'web/b': 'unknown' });
    c.setTargets([]);
    expect(c.observed().size).toBe(0);
    c.close();
  });

  test('never more than maxConcurrentProbes probes in flight', async () => {
    vi.useFakeTimers();
    let inFlight = 0;
    let peak = 0;
    const probe: Probe = async () => {
      inFlight += 1;
      peak = Math.max(peak, inFlight);
      await new Promise((r) => setTimeout(r, 200));
      inFlight -= 1;
      return { ok: true, latencyMs: 200 };
    };
    const c = createHealthChecker({ probe, logger, maxConcurrentProbes: 4, onObservation: () => undefined });
    c.setTargets(
      Array.from({ length: 50 }, (_, i) => ({ key: `p/m${i}`, address: '127.0.0.1', port: 1000 + i, check })),
    );
    await vi.advanceTimersByTimeAsync(5_000);
    expect(peak).toBe(4);
    expect(c.probesTotal).toBeGreaterThan(50);
    c.close();
  });

  test('failures(): the reason of the probe that took a member down, kept while it stays down, gone once up', async () => {
    vi.useFakeTimers();
    let reason: string | undefined;
    const probe: Probe = async () => (reason ? { ok: false, latencyMs: 1, reason } : { ok: true, latencyMs: 1 });
    const c = createHealthChecker({ probe, logger, onObservation: () => undefined });
    c.setTargets([{ key: 'web/a', address: '127.0.0.1', port: 80, check }]);
    await vi.advanceTimersByTimeAsync(2_600);
    expect(c.failures().size).toBe(0);
    reason = 'status 503 (expected 200)';
    while (c.observed().get('web/a') !== 'down') await vi.advanceTimersByTimeAsync(100);
    const downAt = c.failures().get('web/a')?.sinceMs ?? 0;
    // The probe that took it down ran within the last 100 ms the loop advanced.
    expect(Date.now() - downAt).toBeLessThanOrEqual(100);
    expect(Object.fromEntries(c.failures())).toEqual({
      'web/a': { reason: 'status 503 (expected 200)', sinceMs: downAt },
    });
    reason = 'timeout';
    await vi.advanceTimersByTimeAsync(3_000);
    expect(c.failures().get('web/a')).toEqual({ reason: 'status 503 (expected 200)', sinceMs: downAt });
    reason = undefined;
    await vi.advanceTimersByTimeAsync(2_000);
    expect(c.observed().get('web/a')).toBe('up');
    expect(c.failures().size).toBe(0);
    c.close();
  });

  test('a reason longer than MAX_PROBE_REASON_CHARS is cut, so the status record stays one the store accepts', async () => {
    vi.useFakeTimers();
    const probe: Probe = async () => ({ ok: false, latencyMs: 1, reason: 'x'.repeat(5_000) });
    const c = createHealthChecker({ probe, logger, onObservation: () => undefined });
    c.setTargets([{ key: 'web/a', address: '127.0.0.1', port: 80, check }]);
    await vi.advanceTimersByTimeAsync(4_000);
    const reason = c.failures().get('web/a')?.reason ?? '';
    expect(reason).toHaveLength(MAX_PROBE_REASON_CHARS);
    expect(reason.endsWith('...')).toBe(true);
    c.close();
  });

  test('probeFailuresReport: nothing when none is down; at most MAX_PROBE_FAILURES_PER_STATUS, the rest counted', () => {
    expect(probeFailuresReport(new Map())).toEqual({});
    const many = new Map(
      Array.from({ length: MAX_PROBE_FAILURES_PER_STATUS + 3 }, (_, i) => [
        `p/m${String(i).padStart(4, '0')}`,
        { reason: 'timeout', sinceMs: i },
      ]),
    );
    const r = probeFailuresReport(many);
    expect(Object.keys(r.probeFailures ?? {})).toHaveLength(MAX_PROBE_FAILURES_PER_STATUS);
    expect(Object.keys(r.probeFailures ?? {})[0]).toBe('p/m0000');
    expect(r.probeFailuresOmitted).toBe(3);
  });
});
