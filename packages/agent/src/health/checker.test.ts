import { createServer as createHttpServer } from 'node:http';
import { type AddressInfo, createServer, type Socket } from 'node:net';
import type { HealthCheck } from '@l4fleet/config';
import { MAX_PROBE_FAILURES_PER_STATUS } from '@l4fleet/store';
import pino from 'pino';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { createManualClock } from '../clock.js';
import { createHealthChecker, type HealthObservation, MAX_PROBE_REASON_CHARS, probeFailuresReport } from './checker.js';
import type { Probe, ProbeResult } from './probe.js';

const logger = pino({ level: 'silent' });
const check: HealthCheck = { type: 'tcp', intervalMs: 1_000, timeoutMs: 500, rise: 2, fall: 3 };

afterEach(() => {
  vi.useRealTimers();
});

/** Fake-timer step while waiting for a member to go down, ms. */
const DOWN_STEP_MS = 100;

/**
 * Advances fake time in DOWN_STEP_MS steps until `key` is observed down, at most fall + 2 intervals of `check`
 * (a probe per interval: fall failures take it down, with slack for the interval in flight), then asserts it is.
 */
async function advanceUntilDown(c: { observed(): ReadonlyMap<string, string> }, key: string): Promise<void> {
  const maxSteps = Math.ceil((check.intervalMs * (check.fall + 2)) / DOWN_STEP_MS);
  for (let step = 0; step < maxSteps && c.observed().get(key) !== 'down'; step++) {
    await vi.advanceTimersByTimeAsync(DOWN_STEP_MS);
  }
  const observed = c.observed().get(key);
  expect(observed, `${key} not down after ${maxSteps * DOWN_STEP_MS} ms of failing probes: observed ${observed}`).toBe(
    'down',
  );
}

describe('health checker - scheduling and hysteresis', () => {
  test('a member that starts failing is down after fall intervals, and up again after rise', async () => {
    vi.useFakeTimers();
    let healthy = true;
    const probe: Probe = async () => ({ ok: healthy, latencyMs: 1 });
    const seen: HealthObservation[] = [];
    const c = createHealthChecker({ probe, logger, onObservation: (o) => seen.push(o) });
    c.setTargets([{ key: 'web/a', address: '127.0.0.1', port: 80, checks: [check] }]);
    await vi.advanceTimersByTimeAsync(2_600);
    expect(c.observed().get('web/a')).toBe('up');
    healthy = false;
    const failedAt = Date.now();
    await advanceUntilDown(c, 'web/a');
    // fall = 3 probes at 1 s interval: down within interval x fall
    expect(Date.now() - failedAt).toBeLessThanOrEqual(check.intervalMs * check.fall);
    healthy = true;
    await vi.advanceTimersByTimeAsync(2_000);
    expect(c.observed().get('web/a')).toBe('up');
    expect(seen.filter((o) => o.changed).map((o) => o.status)).toEqual(['up', 'down', 'up']);
    c.close();
  });

  test('the wall clock stepped back an hour while a probe runs: the next probe still comes an interval later', async () => {
    // Fake timers fake performance.now() too, and setSystemTime steps only Date (as NTP would): timers keep going.
    vi.useFakeTimers();
    let healthy = true;
    let release: (() => void) | undefined;
    let holdNext = false;
    const probe: Probe = () => {
      const result = { ok: healthy, latencyMs: 1 };
      if (!holdNext) return Promise.resolve(result);
      holdNext = false;
      return new Promise<ProbeResult>((resolve) => {
        release = () => resolve({ ...result, ok: healthy });
      });
    };
    const c = createHealthChecker({ probe, logger, onObservation: () => undefined });
    c.setTargets([{ key: 'web/a', address: '127.0.0.1', port: 80, checks: [check] }]);
    await vi.advanceTimersByTimeAsync(2_600);
    expect(c.observed().get('web/a')).toBe('up');
    holdNext = true;
    for (let i = 0; i < 20 && release === undefined; i++) await vi.advanceTimersByTimeAsync(100);
    expect(release, 'a probe left running').toBeDefined();
    vi.setSystemTime(Date.now() - 3_600_000);
    healthy = false;
    const before = c.probesTotal;
    release?.();
    await vi.advanceTimersByTimeAsync(60_000);
    // One probe a second: about 60 in the minute (the held one among them), not none for an hour.
    expect(c.probesTotal - before).toBeGreaterThanOrEqual(50);
    expect(c.observed().get('web/a')).toBe('down');
    c.close();
  });

  test('setTargets keeps the state of unchanged targets and resets changed ones', async () => {
    vi.useFakeTimers();
    const probe: Probe = async () => ({ ok: true, latencyMs: 1 });
    const c = createHealthChecker({ probe, logger, onObservation: () => undefined });
    const a = { key: 'web/a', address: '127.0.0.1', port: 80, checks: [check] };
    const b = { key: 'web/b', address: '127.0.0.2', port: 80, checks: [check] };
    c.setTargets([a, b]);
    await vi.advanceTimersByTimeAsync(3_000);
    c.setTargets([
      a,
      { ...b, port: 81 },
      { key: 'none/x', address: '127.0.0.3', port: 1, checks: [{ ...check, type: 'none' }] },
    ]);
    expect(Object.fromEntries(c.observed())).toEqual({ 'web/a': 'up', 'web/b': 'unknown' });
    c.setTargets([]);
    expect(c.observed().size).toBe(0);
    c.close();
  });

  // The member reset to unknown said nothing: its metric, the aggregator, the etcd report and probeFailures kept the old
  // endpoint's status until rise or fall probes of the new one.
  test('a member whose endpoint changed is observed unknown at once (changed), from its last status', async () => {
    vi.useFakeTimers();
    let ok = false;
    const probe: Probe = async () => ({ ok, latencyMs: 1, ...(ok ? {} : { reason: 'ECONNREFUSED' }) });
    const seen: HealthObservation[] = [];
    const c = createHealthChecker({ probe, logger, onObservation: (o) => seen.push(o) });
    const a = { key: 'web/a', address: '127.0.0.1', port: 80, checks: [check] };
    const b = { key: 'web/b', address: '127.0.0.2', port: 80, checks: [check] };
    c.setTargets([a, b]);
    await advanceUntilDown(c, 'web/b');
    expect(c.failures().has('web/b')).toBe(true);
    seen.length = 0;
    ok = true;
    c.setTargets([a, { ...b, address: '127.0.0.3' }]);
    expect(seen).toEqual([
      {
        key: 'web/b',
        result: { ok: false, latencyMs: 0, reason: 'endpoint changed: not probed yet' },
        status: 'unknown',
        changed: true,
        atMs: expect.any(Number),
      },
    ]);
    expect(c.failures().has('web/b')).toBe(false);
    // A member that was unknown already, moved again: nothing changed, nothing said.
    seen.length = 0;
    c.setTargets([a, { ...b, address: '127.0.0.4' }]);
    expect(seen).toEqual([]);
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
      Array.from({ length: 50 }, (_, i) => ({ key: `p/m${i}`, address: '127.0.0.1', port: 1000 + i, checks: [check] })),
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
    c.setTargets([{ key: 'web/a', address: '127.0.0.1', port: 80, checks: [check] }]);
    await vi.advanceTimersByTimeAsync(2_600);
    expect(c.failures().size).toBe(0);
    reason = 'status 503 (expected 200)';
    await advanceUntilDown(c, 'web/a');
    const downAt = c.failures().get('web/a')?.sinceMs ?? 0;
    // The probe that took it down ran within the last step the loop advanced.
    expect(Date.now() - downAt).toBeLessThanOrEqual(DOWN_STEP_MS);
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
    c.setTargets([{ key: 'web/a', address: '127.0.0.1', port: 80, checks: [check] }]);
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

describe('health checker - a member with several checks (pools[].additionalHealthChecks)', () => {
  const sidecar: HealthCheck = { ...check, port: 9100, fall: 2 };

  test('down as soon as one check is down (its reason names it), up once every check is up', async () => {
    vi.useFakeTimers();
    let sidecarUp = true;
    const probe: Probe = async (_t, c) =>
      c.port === 9100 && !sidecarUp ? { ok: false, latencyMs: 1, reason: 'ECONNREFUSED' } : { ok: true, latencyMs: 1 };
    const seen: HealthObservation[] = [];
    const c = createHealthChecker({ probe, logger, onObservation: (o) => seen.push(o) });
    c.setTargets([{ key: 'web/a', address: '127.0.0.1', port: 80, checks: [check, sidecar] }]);
    await vi.advanceTimersByTimeAsync(2_600);
    expect(c.observed().get('web/a')).toBe('up');
    sidecarUp = false;
    for (let i = 0; i < 100 && c.observed().get('web/a') !== 'down'; i++) await vi.advanceTimersByTimeAsync(100);
    expect(c.observed().get('web/a')).toBe('down');
    expect(c.failures().get('web/a')?.reason).toBe('check 2 of 2 (tcp port 9100): ECONNREFUSED');
    expect(seen.filter((o) => !o.result.ok).map((o) => o.result.reason)).toContain(
      'check 2 of 2 (tcp port 9100): ECONNREFUSED',
    );
    sidecarUp = true;
    for (let i = 0; i < 100 && c.observed().get('web/a') !== 'up'; i++) await vi.advanceTimersByTimeAsync(100);
    expect(c.observed().get('web/a')).toBe('up');
    expect(c.failures().size).toBe(0);
    // One member, one key: the aggregator and the status record never see the checks apart.
    expect(new Set(seen.map((o) => o.key))).toEqual(new Set(['web/a']));
    expect(seen.filter((o) => o.changed).map((o) => o.status)).toEqual(['up', 'down', 'up']);
    c.close();
  });

  // failures() ordered the checks by wall-clock time: a step back between two failures (NTP, an operator) made the
  // later one look older, and the status record, `l4fleet status` and the dashboard blamed the member's own port
  // when the shared database check had failed first.
  test('the wall clock stepped back between two failures: the reason is still the check that failed first', async () => {
    const clock = createManualClock(1_000_000_000_000);
    let ownUp = true;
    let dbUp = true;
    const database: HealthCheck = { ...check, address: '198.51.100.9', port: 5432, rise: 1, fall: 1 };
    const own: HealthCheck = { ...check, rise: 1, fall: 1 };
    const probe: Probe = async (t) => {
      const up = t.port === 5432 ? dbUp : ownUp;
      return up ? { ok: true, latencyMs: 1 } : { ok: false, latencyMs: 1, reason: t.port === 5432 ? 'DB' : 'OWN' };
    };
    const c = createHealthChecker({ probe, logger, clock, onObservation: () => undefined });
    c.setTargets([{ key: 'web/w0', address: '127.0.0.1', port: 80, checks: [own, database] }]);
    await clock.advance(3_000);
    expect(c.observed().get('web/w0')).toBe('up');
    dbUp = false;
    await clock.advance(3_000);
    expect(c.observed().get('web/w0')).toBe('down');
    const dbDownAtMs = c.failures().get('web/w0')?.sinceMs;
    clock.stepWall(-600_000);
    ownUp = false;
    await clock.advance(3_000);
    expect(c.failures().get('web/w0')).toEqual({
      reason: 'check 2 of 2 (tcp at 198.51.100.9 port 5432): DB',
      sinceMs: dbDownAtMs,
    });
    c.close();
  });

  test('healthChecksRequired: up while enough checks pass, down once too many fail (named and counted), then up again', async () => {
    vi.useFakeTimers();
    const failing = new Set<number>();
    const probe: Probe = async (_t, c) =>
      failing.has(c.port ?? 80) ? { ok: false, latencyMs: 1, reason: 'ECONNREFUSED' } : { ok: true, latencyMs: 1 };
    const seen: HealthObservation[] = [];
    const c = createHealthChecker({ probe, logger, onObservation: (o) => seen.push(o) });
    const other: HealthCheck = { ...sidecar, port: 9200 };
    const target = { key: 'web/a', address: '127.0.0.1', port: 80, checks: [check, sidecar, other], required: 2 };
    c.setTargets([target]);
    const settle = async (status: string) => {
      for (let i = 0; i < 100 && c.observed().get('web/a') !== status; i++) await vi.advanceTimersByTimeAsync(100);
    };
    await settle('up');
    expect(c.observed().get('web/a')).toBe('up');
    // One of three down: 2 still pass, the member stays up.
    failing.add(9100);
    await vi.advanceTimersByTimeAsync(5_000);
    expect(c.observed().get('web/a')).toBe('up');
    expect(c.failures().size).toBe(0);
    // Two of three down: 2 cannot pass any more.
    failing.add(9200);
    await settle('down');
    expect(c.observed().get('web/a')).toBe('down');
    expect(c.failures().get('web/a')?.reason).toBe(
      '2 of 3 checks down (2 must pass): check 2 of 3 (tcp port 9100): ECONNREFUSED',
    );
    // One back: two pass again.
    failing.delete(9200);
    await settle('up');
    expect(c.observed().get('web/a')).toBe('up');
    // Required raised to all by a fleet change: the failing check alone now takes it down.
    c.setTargets([{ ...target, required: 3 }]);
    await settle('down');
    expect(c.failures().get('web/a')?.reason).toBe('check 2 of 3 (tcp port 9100): ECONNREFUSED');
    expect(seen.filter((o) => o.changed).map((o) => o.status)).toEqual(['up', 'down', 'up', 'down']);
    c.close();
  });

  test('unknown until every check has decided at start; a check added later leaves an up member up until it fails', async () => {
    vi.useFakeTimers();
    let sidecarUp = true;
    const slow: HealthCheck = { ...sidecar, rise: 5 };
    const probe: Probe = async (_t, c) => ({ ok: c.port !== 9100 || sidecarUp, latencyMs: 1 });
    const c = createHealthChecker({ probe, logger, onObservation: () => undefined });
    const target = { key: 'web/a', address: '127.0.0.1', port: 80, checks: [check, slow] };
    c.setTargets([target]);
    // The first check is up after ~2 s, the second needs 5 probes.
    await vi.advanceTimersByTimeAsync(2_600);
    expect(c.observed().get('web/a')).toBe('unknown');
    await vi.advanceTimersByTimeAsync(3_000);
    expect(c.observed().get('web/a')).toBe('up');
    // Replace the second check by another (a new identity: its hysteresis starts over): the member stays up.
    c.setTargets([{ ...target, checks: [check, { ...sidecar, port: 9101 }] }]);
    expect(c.observed().get('web/a')).toBe('up');
    await vi.advanceTimersByTimeAsync(500);
    expect(c.observed().get('web/a')).toBe('up');
    // A third check that fails takes it down; dropping it again brings it back at the next probe.
    sidecarUp = false;
    c.setTargets([{ ...target, checks: [check, { ...sidecar, port: 9101 }, slow] }]);
    for (let i = 0; i < 100 && c.observed().get('web/a') !== 'down'; i++) await vi.advanceTimersByTimeAsync(100);
    expect(c.failures().get('web/a')?.reason).toBe('check 3 of 3 (tcp port 9100): failed');
    c.setTargets([{ ...target, checks: [check, { ...sidecar, port: 9101 }] }]);
    await vi.advanceTimersByTimeAsync(1_100);
    expect(c.observed().get('web/a')).toBe('up');
    // A new endpoint starts from unknown, whatever its checks.
    c.setTargets([{ ...target, port: 81, checks: [check, { ...sidecar, port: 9101 }] }]);
    expect(c.observed().get('web/a')).toBe('unknown');
    c.close();
  });

  test('real sockets: an HTTP check and a TCP check of a sidecar port; closing the sidecar takes the member down', async () => {
    const http = createHttpServer((req, res) => res.writeHead(req.url === '/healthz' ? 200 : 503).end());
    const side = createServer((s) => s.end());
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    await new Promise<void>((r) => side.listen(0, '127.0.0.1', r));
    const httpPort = (http.address() as AddressInfo).port;
    const sidePort = (side.address() as AddressInfo).port;
    const fast = { intervalMs: 100, timeoutMs: 50, rise: 1, fall: 1 };
    const c = createHealthChecker({ logger, onObservation: () => undefined });
    const until = async (want: string) => {
      for (let i = 0; i < 100 && c.observed().get('web/a') !== want; i++) await new Promise((r) => setTimeout(r, 50));
      return c.observed().get('web/a');
    };
    try {
      c.setTargets([
        {
          key: 'web/a',
          address: '127.0.0.1',
          port: httpPort,
          checks: [
            { type: 'http', path: '/healthz', expectStatus: 200, ...fast },
            { type: 'tcp', port: sidePort, ...fast },
          ],
        },
      ]);
      expect(await until('up')).toBe('up');
      await new Promise((r) => side.close(r));
      expect(await until('down')).toBe('down');
      expect(c.failures().get('web/a')?.reason).toMatch(
        new RegExp(`^check 2 of 2 \\(tcp port ${sidePort}\\): .*ECONNREFUSED`),
      );
    } finally {
      c.close();
      await new Promise((r) => http.close(r));
      if (side.listening) await new Promise((r) => side.close(r));
    }
  });

  test('maxConcurrentProbes set live: a raised bound starts waiting probes at once; a lowered one holds as probes end', async () => {
    const pending: (() => void)[] = [];
    let inFlight = 0;
    const probe = () =>
      new Promise<ProbeResult>((resolve) => {
        inFlight += 1;
        pending.push(() => {
          inFlight -= 1;
          resolve({ ok: true, latencyMs: 1 });
        });
      });
    const tick = () => new Promise((r) => setTimeout(r, 5));
    const c = createHealthChecker({ logger, onObservation: () => undefined, probe, maxConcurrentProbes: 1 });
    const check = { type: 'tcp' as const, intervalMs: 100, timeoutMs: 50, rise: 1, fall: 1 };
    try {
      c.setTargets(
        Array.from({ length: 5 }, (_, i) => ({ key: `web/m${i}`, address: '127.0.0.1', port: 1 + i, checks: [check] })),
      );
      await new Promise((r) => setTimeout(r, 300)); // every member's first probe is due: one runs, four wait
      expect(inFlight).toBe(1);
      c.setProbeOptions({ maxConcurrentProbes: 3 });
      await tick();
      expect(inFlight).toBe(3);
      c.setProbeOptions({ maxConcurrentProbes: 1 });
      // The three in flight end; only the third end lets a waiting probe start (the bound is 1 again).
      for (const done of pending.splice(0, 3)) {
        done();
        await tick();
      }
      expect(inFlight).toBe(1);
    } finally {
      c.close();
      for (const done of pending) done();
    }
  });

  test('real sockets: setProbeOptions moves the probes to a new source address without resetting the member', async () => {
    const sources: string[] = [];
    const server = createServer((s) => {
      sources.push(s.remoteAddress ?? '');
      s.end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const check = { type: 'tcp' as const, intervalMs: 100, timeoutMs: 50, rise: 1, fall: 1 };
    const c = createHealthChecker({ logger, onObservation: () => undefined, sourceAddress: '127.0.0.5' });
    const waitFor = async (address: string) => {
      for (let i = 0; i < 100 && sources.at(-1) !== address; i++) await new Promise((r) => setTimeout(r, 20));
      return sources.at(-1);
    };
    try {
      c.setTargets([{ key: 'web/a', address: '127.0.0.1', port, checks: [check] }]);
      expect(await waitFor('127.0.0.5')).toBe('127.0.0.5');
      c.setProbeOptions({ sourceAddress: '127.0.0.6' });
      expect(await waitFor('127.0.0.6')).toBe('127.0.0.6');
      expect(c.observed().get('web/a')).toBe('up');
    } finally {
      c.close();
      await new Promise((r) => server.close(r));
    }
  });

  test('real sockets: a check of another address (a dependency every member shares) takes every member down when it closes', async () => {
    const servers = ['127.0.0.2', '127.0.0.3'].map((a) => ({ a, s: createServer((s) => s.end()) }));
    const dependency = createServer((s) => s.end());
    await new Promise<void>((r) => dependency.listen(0, '127.0.0.4', r));
    const dependencyPort = (dependency.address() as AddressInfo).port;
    let port = 0;
    for (const { a, s } of servers) {
      await new Promise<void>((r) => s.listen(port, a, r));
      port = (s.address() as AddressInfo).port;
    }
    const fast = { intervalMs: 100, timeoutMs: 50, rise: 1, fall: 1 };
    const checks = [
      { type: 'tcp' as const, ...fast },
      { type: 'tcp' as const, address: '127.0.0.4', port: dependencyPort, ...fast },
    ];
    const c = createHealthChecker({ logger, onObservation: () => undefined });
    const until = async (want: string) => {
      const both = () => ['web/a', 'web/b'].map((k) => c.observed().get(k));
      for (let i = 0; i < 100 && both().some((o) => o !== want); i++) await new Promise((r) => setTimeout(r, 50));
      return both();
    };
    try {
      c.setTargets([
        { key: 'web/a', address: '127.0.0.2', port, checks },
        { key: 'web/b', address: '127.0.0.3', port, checks },
      ]);
      expect(await until('up')).toEqual(['up', 'up']);
      await new Promise((r) => dependency.close(r));
      expect(await until('down')).toEqual(['down', 'down']);
      for (const key of ['web/a', 'web/b'])
        expect(c.failures().get(key)?.reason).toMatch(
          new RegExp(`^check 2 of 2 \\(tcp at 127\\.0\\.0\\.4 port ${dependencyPort}\\): .*ECONNREFUSED`),
        );
    } finally {
      c.close();
      for (const { s } of servers) await new Promise((r) => s.close(r));
      if (dependency.listening) await new Promise((r) => dependency.close(r));
    }
  });
});

// A probe in flight used to run on after its member was removed, its check changed or the checker closed: its socket
// and its maxConcurrentProbes slot were held until its own timeoutMs (up to an hour), so other pools' probes queued.
describe('health checker - a probe in flight ends with its check', () => {
  /** A probe that ends only when its signal aborts; the signals it was given, in order. */
  const hangingProbe = () => {
    const signals: (AbortSignal | undefined)[] = [];
    const probe: Probe = (_t, _c, o) => {
      signals.push(o?.signal);
      return new Promise<ProbeResult>((resolve) =>
        o?.signal?.addEventListener('abort', () => resolve({ ok: false, latencyMs: 0, reason: 'stopped' })),
      );
    };
    return { probe, signals };
  };
  const hangs: HealthCheck = { ...check, intervalMs: 1_000, timeoutMs: 3_000_000 };

  test.each([
    ['the member is removed', (c: ReturnType<typeof createHealthChecker>) => c.setTargets([])],
    [
      'its check changes',
      (c: ReturnType<typeof createHealthChecker>) =>
        c.setTargets([{ key: 'p/a', address: '127.0.0.1', port: 80, checks: [{ ...hangs, timeoutMs: 500 }] }]),
    ],
    ['the checker closes', (c: ReturnType<typeof createHealthChecker>) => c.close()],
  ])('%s: the probe in flight is aborted', async (_what, change) => {
    vi.useFakeTimers();
    const { probe, signals } = hangingProbe();
    const c = createHealthChecker({ probe, logger, onObservation: () => undefined });
    c.setTargets([{ key: 'p/a', address: '127.0.0.1', port: 80, checks: [hangs] }]);
    await vi.advanceTimersByTimeAsync(hangs.intervalMs);
    expect(signals).toHaveLength(1);
    expect(signals[0]?.aborted).toBe(false);
    change(c);
    expect(signals[0]?.aborted).toBe(true);
    c.close();
  });

  test('real sockets: a hung member removed gives its slot to the next member at once, and its socket is closed', async () => {
    // maxConcurrentProbes 1: while the removed member's probe held its slot, the new member was never probed.
    const serverSides: Socket[] = [];
    const hung = createServer((s) => {
      s.on('error', () => undefined);
      serverSides.push(s);
    });
    await new Promise<void>((r) => hung.listen(0, '127.0.0.1', r));
    const tmp = createServer();
    await new Promise<void>((r) => tmp.listen(0, '127.0.0.1', r));
    const closedPort = (tmp.address() as AddressInfo).port;
    await new Promise((r) => tmp.close(r));
    const seen: HealthObservation[] = [];
    const c = createHealthChecker({ logger, maxConcurrentProbes: 1, onObservation: (o) => seen.push(o) });
    const waitFor = async (what: string, cond: () => boolean) => {
      for (let i = 0; i < 100 && !cond(); i++) await new Promise((r) => setTimeout(r, 50));
      expect(cond(), what).toBe(true);
    };
    try {
      const fast = { intervalMs: 200, timeoutMs: 100, rise: 1, fall: 1 };
      c.setTargets([
        {
          key: 'p/hung',
          address: '127.0.0.1',
          port: (hung.address() as AddressInfo).port,
          checks: [{ type: 'tcp', expect: 'never', intervalMs: 200, timeoutMs: 3_000_000, rise: 1, fall: 1 }],
        },
      ]);
      await waitFor('the hung member is probed', () => serverSides.length === 1);
      const closed = new Promise<void>((r) => serverSides[0]?.once('close', () => r()));
      c.setTargets([{ key: 'p/ok', address: '127.0.0.1', port: closedPort, checks: [{ type: 'tcp', ...fast }] }]);
      await waitFor('the new member is probed', () => seen.some((o) => o.key === 'p/ok'));
      expect(seen.find((o) => o.key === 'p/ok')?.result.reason).toBe('ECONNREFUSED');
      expect(seen.some((o) => o.key === 'p/hung')).toBe(false); // the stopped probe's result is dropped
      let isClosed = false;
      void closed.then(() => {
        isClosed = true;
      });
      await waitFor("the removed member's socket is closed", () => isClosed);
    } finally {
      c.close();
      for (const s of serverSides) s.destroy();
      await new Promise((r) => hung.close(r));
    }
  });

  test("real sockets: close() closes a probe's socket in flight", async () => {
    const serverSides: Socket[] = [];
    const hung = createServer((s) => {
      s.on('error', () => undefined);
      serverSides.push(s);
    });
    await new Promise<void>((r) => hung.listen(0, '127.0.0.1', r));
    const c = createHealthChecker({ logger, onObservation: () => undefined });
    try {
      c.setTargets([
        {
          key: 'p/hung',
          address: '127.0.0.1',
          port: (hung.address() as AddressInfo).port,
          checks: [{ type: 'tcp', expect: 'never', intervalMs: 200, timeoutMs: 3_000_000, rise: 1, fall: 1 }],
        },
      ]);
      for (let i = 0; i < 100 && serverSides.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
      expect(serverSides).toHaveLength(1);
      let isClosed = false;
      serverSides[0]?.once('close', () => {
        isClosed = true;
      });
      c.close();
      for (let i = 0; i < 100 && !isClosed; i++) await new Promise((r) => setTimeout(r, 50));
      expect(isClosed).toBe(true);
    } finally {
      for (const s of serverSides) s.destroy();
      await new Promise((r) => hung.close(r));
    }
  });
});
