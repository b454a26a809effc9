import { StoreError } from '@l4fleet/store';
import pino from 'pino';
import { describe, expect, test } from 'vitest';
import { createManualClock } from '../clock.js';
import { createAgentMetrics } from '../observe/metrics.js';
import { createFailStatic, ETCD_PROBE_INTERVAL_MS, etcdProbeTimeoutMs } from './fail-static.js';
import { INVALID_RECORD } from './rejected-records.js';

const logger = pino({ level: 'silent' });
const PROBE_TIMEOUT_MS = 2_000;

/** A probe target whose answer the test chooses: answer, refuse, hang (never settles) or a rejected record. */
function setup() {
  const clock = createManualClock(1_000_000);
  let mode: 'answer' | 'refuse' | 'hang' | 'badRecord' = 'answer';
  let calls = 0;
  const changes: [boolean, string][] = [];
  const rejected: string[] = [];
  const metrics = createAgentMetrics({ node: 'n1', fleet: 'default', defaultMetrics: false });
  const fs = createFailStatic({
    store: {
      getLeader: () => {
        calls += 1;
        if (mode === 'hang') return new Promise<string | undefined>(() => undefined);
        if (mode === 'refuse') return Promise.reject(new StoreError('UNAVAILABLE', 'connect ECONNREFUSED'));
        if (mode === 'badRecord') {
          return Promise.reject(new StoreError(INVALID_RECORD, 'election key: not a node name'));
        }
        return Promise.resolve('n1');
      },
    },
    clock,
    probeTimeoutMs: PROBE_TIMEOUT_MS,
    metrics,
    logger,
    revision: () => 7,
    onFailStatic: (f, why) => changes.push([f, why]),
    onRejectedRecord: (err) => rejected.push(err.message),
  });
  return {
    clock,
    fs,
    changes,
    rejected,
    calls: () => calls,
    entered: async () => (await metrics.failStaticEnteredTotal.get()).values[0]?.value ?? 0,
    setMode: (m: typeof mode) => void (mode = m),
  };
}

describe('fail-static - etcd probe on the injected clock', () => {
  test('a probe that never answers enters fail-static after the probe timeout, not before', async () => {
    const t = setup();
    t.fs.startProbing(0);
    await t.clock.advance(0);
    expect(t.calls()).toBe(1);
    expect(t.fs.failStatic).toBe(false);
    t.setMode('hang');
    await t.clock.advance(ETCD_PROBE_INTERVAL_MS); // the second probe starts and hangs
    expect(t.calls()).toBe(2);
    await t.clock.advance(PROBE_TIMEOUT_MS - 1);
    expect(t.fs.failStatic).toBe(false);
    await t.clock.advance(1);
    expect(t.fs).toMatchObject({ failStatic: true, etcdOk: false });
    expect(t.changes).toEqual([[true, `etcdUnreachable: etcd probe: no answer within ${PROBE_TIMEOUT_MS} ms`]]);
    t.setMode('answer');
    await t.clock.advance(ETCD_PROBE_INTERVAL_MS);
    expect(t.fs).toMatchObject({ failStatic: false, etcdOk: true });
    expect(t.changes.map(([f]) => f)).toEqual([true, false]);
    t.fs.close();
    const before = t.calls();
    await t.clock.advance(10 * ETCD_PROBE_INTERVAL_MS);
    expect(t.calls()).toBe(before);
    expect(t.clock.pending).toBe(0);
  });

  test('probes every interval; a refused probe enters fail-static at once', async () => {
    const t = setup();
    t.fs.startProbing();
    await t.clock.advance(ETCD_PROBE_INTERVAL_MS - 1);
    expect(t.calls()).toBe(0);
    await t.clock.advance(1);
    expect(t.calls()).toBe(1);
    await t.clock.advance(3 * ETCD_PROBE_INTERVAL_MS);
    expect(t.calls()).toBe(4);
    t.setMode('refuse');
    await t.clock.advance(ETCD_PROBE_INTERVAL_MS);
    expect(t.fs.failStatic).toBe(true);
    t.fs.close();
  });

  test('a rejected election record is reported, and is not an outage', async () => {
    const t = setup();
    t.setMode('badRecord');
    t.fs.startProbing(0);
    await t.clock.advance(0);
    expect(t.fs.failStatic).toBe(false);
    expect(t.rejected).toEqual(['election key: not a node name']);
    t.fs.close();
  });

  test('probeNow (a watch broke) probes at once: etcd answers, so no fail-static; refused, fail-static', async () => {
    const t = setup();
    t.fs.startProbing();
    t.fs.probeNow('desiredWatchUnavailable');
    await t.clock.advance(0);
    expect(t.calls()).toBe(1);
    expect(t.fs.failStatic).toBe(false);
    expect(await t.entered()).toBe(0);
    // The regular interval restarts from the requested probe.
    await t.clock.advance(ETCD_PROBE_INTERVAL_MS);
    expect(t.calls()).toBe(2);
    t.setMode('refuse');
    t.fs.probeNow('desiredWatchUnavailable');
    await t.clock.advance(0);
    expect(t.calls()).toBe(3);
    expect(t.fs.failStatic).toBe(true);
    expect(await t.entered()).toBe(1);
    t.fs.close();
  });

  test('probeNow while a probe is under way leaves it to decide (one call, no second timer)', async () => {
    const t = setup();
    t.setMode('hang');
    t.fs.startProbing(0);
    await t.clock.advance(0);
    expect(t.calls()).toBe(1);
    t.fs.probeNow('desiredWatchUnavailable');
    t.fs.probeNow('desiredWatchUnavailable');
    await t.clock.advance(0);
    expect(t.calls()).toBe(1);
    await t.clock.advance(PROBE_TIMEOUT_MS);
    expect(t.fs.failStatic).toBe(true);
    t.setMode('answer');
    await t.clock.advance(ETCD_PROBE_INTERVAL_MS);
    expect(t.calls()).toBe(2);
    expect(t.fs.failStatic).toBe(false);
    expect(await t.entered()).toBe(1);
    t.fs.close();
    expect(t.clock.pending).toBe(0);
  });

  test('startProbing while a requested probe is under way: still one probe per interval', async () => {
    const t = setup();
    t.setMode('hang');
    t.fs.probeNow('desiredWatchUnavailable');
    await t.clock.advance(0);
    t.fs.startProbing(0); // e.g. the agent's connect finishing while the probe waits
    await t.clock.advance(0);
    expect(t.calls()).toBe(1);
    t.setMode('answer');
    await t.clock.advance(PROBE_TIMEOUT_MS); // the hung probe times out and schedules the next
    const after = t.calls();
    await t.clock.advance(5 * ETCD_PROBE_INTERVAL_MS);
    expect(t.calls() - after).toBe(5);
    t.fs.close();
    expect(t.clock.pending).toBe(0);
  });

  test('the probe timeout: one dial timeout with one endpoint; room for a second member with several', () => {
    expect(etcdProbeTimeoutMs(2_000, 1)).toBe(2_000);
    expect(etcdProbeTimeoutMs(2_000, 3)).toBeGreaterThan(2 * 2_000);
    expect(etcdProbeTimeoutMs(2_000, 3)).toBeLessThan(3 * 2_000);
  });
});
