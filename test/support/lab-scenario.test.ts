import type { FlowSample } from '@l4fleet/lab';
import { describe, expect, test } from 'vitest';
import { reachedBackend } from './lab-scenario.js';

const flow = (over: Partial<FlowSample>): FlowSample => ({
  id: 1,
  protocol: 'tcp',
  localPort: 40000,
  localAddress: '198.18.1.2',
  target: '198.51.100.10:80',
  backend: undefined,
  state: 'open',
  replies: 1,
  maxPauseMs: 0,
  openedAt: 0,
  backends: [],
  ...over,
});

describe('reachedBackend: which new flows of a batch reached the failing backend', () => {
  test('its answer, or a refusal or reset before any answer, is reaching it', () => {
    expect(reachedBackend([flow({ backend: 'backend3' })], 'backend3').reached).toBe(true);
    for (const reason of ['ECONNREFUSED', 'reset', 'closed']) {
      const f = flow({ state: 'broken', reason, localPort: 0 });
      expect(reachedBackend([f], 'backend3')).toEqual({ reached: true, hits: [f], otherFailures: [] });
    }
  });

  test('answers from other backends are not; a timeout is another failure, listed apart', () => {
    expect(reachedBackend([flow({ backend: 'backend1' }), flow({ backend: 'backend2' })], 'backend3').reached).toBe(
      false,
    );
    expect(reachedBackend([flow({ state: 'broken', reason: 'timeout', localPort: 41000 })], 'backend3')).toEqual({
      reached: false,
      hits: [],
      otherFailures: ['tcp:41000 timeout'],
    });
  });
});
