import { GRPCUnavailableError } from 'etcd3';
import pino from 'pino';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { ENDPOINT_PROBE_MIN_MS, EndpointDownError, EndpointHealth } from './endpoint-health.js';

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
});
