/** The line a held-back view carries: since when (the first failure of this hold) and why. */
import { describe, expect, test } from 'vitest';
import type { FleetView } from './fleet-view.js';
import { createHoldBack } from './held-view.js';

const good = { revision: 1, problems: ['etcd is slow'] } as unknown as FleetView;
const T0 = Date.UTC(2026, 11, 6, 21, 0, 0);

describe('hold back', () => {
  test('held, cleared, held later: the second hold says since its own time, not the first', () => {
    let now = T0;
    const holdBack = createHoldBack(() => now);
    expect(holdBack.held(good, new Error('too large'))?.problems).toEqual([
      'view not updated since 2026-12-06T21:00:00.000Z: too large',
      'etcd is slow',
    ]);
    now += 60_000;
    expect(holdBack.held(good, new Error('too large'))).toBeUndefined(); // the same hold, nothing new to tell
    holdBack.clear();
    now += 60_000;
    expect(holdBack.held(good, new Error('too large'))?.problems).toEqual([
      'view not updated since 2026-12-06T21:02:00.000Z: too large',
      'etcd is slow',
    ]);
  });
});
