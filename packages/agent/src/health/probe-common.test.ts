import { EventEmitter } from 'node:events';
import { describe, expect, test } from 'vitest';
import { finisher, guarded, type ProbeResult } from './probe-common.js';

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
