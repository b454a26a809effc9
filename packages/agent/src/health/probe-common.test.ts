import { EventEmitter, getEventListeners } from 'node:events';
import { describe, expect, test } from 'vitest';
import { finisher, guarded, type ProbeResult, timedFinisher } from './probe-common.js';

describe('probe - listeners', () => {
  test('a listener that throws ends the probe down, naming the error, instead of throwing out of emit()', () => {
    const results: ProbeResult[] = [];
    const finish = finisher(
      performance.now(),
      (r) => results.push(r),
      () => undefined,
    );
    const emitter = new EventEmitter();
    emitter.once(
      'end',
      guarded(finish, () => {
        throw new URIError('URI malformed');
      }),
    );
    expect(() => emitter.emit('end')).not.toThrow();
    expect(results).toEqual([{ ok: false, latencyMs: expect.any(Number), reason: 'probe error: URI malformed' }]);
  });
});

describe('probe - timedFinisher and its stop signal', () => {
  // The signal outlives the probe (it stops the whole checker): a finished probe that left its abort listener on it
  // kept one closure per probe run until the checker stopped.
  test('a finished probe takes its abort listener off the signal; an abort after it changes nothing', () => {
    const stop = new AbortController();
    const results: ProbeResult[] = [];
    let cleanups = 0;
    const finish = timedFinisher(
      performance.now(),
      10_000,
      (r) => void results.push(r),
      () => void (cleanups += 1),
      { signal: stop.signal },
    );
    expect(getEventListeners(stop.signal, 'abort')).toHaveLength(1);
    finish(true);
    expect(getEventListeners(stop.signal, 'abort')).toHaveLength(0);
    stop.abort();
    expect(results).toHaveLength(1);
    expect(results[0]?.ok).toBe(true);
    expect(cleanups).toBe(1);
  });
});
