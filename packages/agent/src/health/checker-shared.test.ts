/**
 * A check with an `address` of its own (a dependency every member shares) runs once per node, not once per member:
 * one timer and one hysteresis feed every member, of every pool, that has the same check.
 */
import type { HealthCheck } from '@l4fleet/config';
import pino from 'pino';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { createHealthChecker, type HealthObservation, type HealthTarget } from './checker.js';
import type { Probe } from './probe.js';

const logger = pino({ level: 'silent' });
const own: HealthCheck = { type: 'tcp', intervalMs: 1_000, timeoutMs: 500, rise: 1, fall: 2 };
const database: HealthCheck = { ...own, address: '198.18.3.50', port: 5432 };

afterEach(() => {
  vi.useRealTimers();
});

/** Pool `web`: its own check and the database; pool `api`: the database alone. */
function targets(webMembers: number, apiMembers: number): HealthTarget[] {
  return [
    ...Array.from({ length: webMembers }, (_, i) => ({
      key: `web/w${i}`,
      address: `198.18.0.${21 + i}`,
      port: 80,
      checks: [own, database],
    })),
    ...Array.from({ length: apiMembers }, (_, i) => ({
      key: `api/a${i}`,
      address: `198.18.0.${41 + i}`,
      port: 443,
      checks: [database],
    })),
  ];
}

describe('health checker - a check of a shared address', () => {
  test('probed once per interval whatever the number of members; its failure takes every member down, named per pool', async () => {
    vi.useFakeTimers();
    let databaseUp = true;
    const probed: string[] = [];
    const probe: Probe = async (t, c) => {
      probed.push(`${t.address}:${t.port}`);
      return c.address && !databaseUp
        ? { ok: false, latencyMs: 1, reason: 'ECONNREFUSED' }
        : { ok: true, latencyMs: 1 };
    };
    const seen: HealthObservation[] = [];
    const c = createHealthChecker({ probe, logger, onObservation: (o) => seen.push(o) });
    c.setTargets(targets(3, 2));
    await vi.advanceTimersByTimeAsync(10_000);
    const dbProbes = probed.filter((p) => p === '198.18.3.50:5432').length;
    // One probe a second for ten seconds: 10 (11 with the first one early), not 50 (one per member).
    expect(dbProbes).toBeGreaterThanOrEqual(10);
    expect(dbProbes).toBeLessThanOrEqual(11);
    // The members' own checks still run per member.
    expect(probed.filter((p) => p === '198.18.0.21:80').length).toBeGreaterThanOrEqual(10);
    expect(Object.fromEntries(c.observed())).toEqual({
      'web/w0': 'up',
      'web/w1': 'up',
      'web/w2': 'up',
      'api/a0': 'up',
      'api/a1': 'up',
    });
    databaseUp = false;
    await vi.advanceTimersByTimeAsync(2_100);
    expect([...c.observed().values()]).toEqual(['down', 'down', 'down', 'down', 'down']);
    // Each member's reason is labelled as its own pool's checks are: second of two in web, the only one in api.
    expect(c.failures().get('web/w1')?.reason).toBe('check 2 of 2 (tcp at 198.18.3.50 port 5432): ECONNREFUSED');
    expect(c.failures().get('api/a0')?.reason).toBe('check (tcp at 198.18.3.50 port 5432): ECONNREFUSED');
    const downs = seen.filter((o) => o.changed && o.status === 'down').map((o) => o.key);
    expect(downs.sort()).toEqual(['api/a0', 'api/a1', 'web/w0', 'web/w1', 'web/w2']);
    c.close();
  });

  test('a member joining or leaving leaves the shared check running as it was; the last one leaving stops it', async () => {
    vi.useFakeTimers();
    const probed: string[] = [];
    const probe: Probe = async (t) => {
      probed.push(`${t.address}:${t.port}`);
      return { ok: true, latencyMs: 1 };
    };
    const c = createHealthChecker({ probe, logger, onObservation: () => undefined });
    c.setTargets(targets(0, 1));
    await vi.advanceTimersByTimeAsync(3_000);
    expect(c.observed().get('api/a0')).toBe('up');
    // A second member: the dependency is already known up (no new probe needed); the member is new, so unknown
    // until the check's next probe.
    c.setTargets(targets(0, 2));
    expect(c.observed().get('api/a1')).toBe('unknown');
    await vi.advanceTimersByTimeAsync(1_000);
    expect(c.observed().get('api/a1')).toBe('up');
    c.setTargets(targets(0, 1));
    expect([...c.observed().keys()]).toEqual(['api/a0']);
    const before = probed.length;
    await vi.advanceTimersByTimeAsync(3_000);
    expect(probed.length - before).toBeGreaterThanOrEqual(2);
    expect(probed.length - before).toBeLessThanOrEqual(4);
    c.setTargets([]);
    const after = probed.length;
    await vi.advanceTimersByTimeAsync(5_000);
    expect(probed.length).toBe(after);
    c.close();
  });

  // l4fleet_health_probes_total counted each member's observation: a shared check for 5 members, 5 probes, 25 counted.
  test('onProbe: once per probe, not once per member the probe feeds', async () => {
    vi.useFakeTimers();
    let probes = 0;
    const probe: Probe = async () => {
      probes += 1;
      return { ok: true, latencyMs: 1 };
    };
    const counted: boolean[] = [];
    const c = createHealthChecker({
      probe,
      logger,
      onObservation: () => undefined,
      onProbe: (r) => void counted.push(r.ok),
    });
    c.setTargets(targets(0, 5)); // five api members, the database check alone: one run
    await vi.advanceTimersByTimeAsync(5_000);
    expect(probes).toBeGreaterThan(0);
    expect(counted).toHaveLength(probes);
    expect(c.probesTotal).toBe(probes);
    c.close();
  });
});
