import { describe, expect, test } from 'vitest';
import { createManualClock } from '../clock.js';
import { createOwnStamps } from './own-stamps.js';

const T0 = 1_700_000_000_000;

describe('own stamps - the wall clock steps since a time was held', () => {
  test('a time not held is undefined (taken over); one held has the step since, either way', async () => {
    const clock = createManualClock(T0);
    const stamps = createOwnStamps(clock);
    stamps.hold([['web/a', T0]], stamps.steps());
    expect(stamps.steps()('web/a', T0 + 1)).toBeUndefined();
    expect(stamps.steps()('web/b', T0)).toBeUndefined();
    await clock.advance(60_000); // time passing is no step
    expect(stamps.steps()('web/a', T0)).toBe(0);
    clock.stepWall(600_000);
    expect(stamps.steps()('web/a', T0)).toBe(600_000);
    clock.stepWall(-3_600_000);
    expect(stamps.steps()('web/a', T0)).toBe(-3_000_000);
    stamps.clear();
    expect(stamps.steps()('web/a', T0)).toBeUndefined();
  });

  test('times are held as of the steps read with them: a step between (during the write) shows at the next', () => {
    const clock = createManualClock(T0);
    const stamps = createOwnStamps(clock);
    const asOf = stamps.steps(); // the computation reads its now: T0 is in this wall time
    clock.stepWall(600_000); // while the write is in etcd
    stamps.hold([['web/a', T0]], asOf);
    expect(stamps.steps()('web/a', T0)).toBe(600_000);
  });

  test('steps under 1 s are jitter, but add up while the time is held unshifted', () => {
    const clock = createManualClock(T0);
    const stamps = createOwnStamps(clock);
    stamps.hold([['web/a', T0]], stamps.steps());
    clock.stepWall(600);
    expect(stamps.steps()('web/a', T0)).toBe(0);
    stamps.hold([['web/a', T0]], stamps.steps());
    clock.stepWall(600);
    expect(stamps.steps()('web/a', T0)).toBe(1_200);
  });

  test('the time a shift replaced stays known (a late echo of the record); keys not held now are forgotten', () => {
    const clock = createManualClock(T0);
    const stamps = createOwnStamps(clock);
    stamps.hold(
      [
        ['web', T0],
        ['web', T0 + 5],
        ['api', T0],
      ],
      stamps.steps(),
    );
    clock.stepWall(600_000);
    stamps.hold(
      [
        ['web', T0 + 600_000],
        ['web', T0 + 600_005],
      ],
      stamps.steps(),
    );
    const steps = stamps.steps();
    expect([steps('web', T0), steps('web', T0 + 5), steps('web', T0 + 600_000)]).toEqual([600_000, 600_000, 0]);
    expect(steps('api', T0)).toBeUndefined();
  });

  test('one key held at 20 times in turn keeps the 16 latest: the oldest is forgotten (taken over if read again)', () => {
    const clock = createManualClock(T0);
    const stamps = createOwnStamps(clock);
    for (let i = 0; i < 20; i++) stamps.hold([['web', T0 + i]], stamps.steps());
    const steps = stamps.steps();
    const known = Array.from({ length: 20 }, (_, i) => steps('web', T0 + i) !== undefined);
    expect(steps('web', T0)).toBeUndefined();
    expect(steps('web', T0 + 19)).toBe(0);
    expect(known).toEqual([...Array(4).fill(false), ...Array(16).fill(true)]);
  });
});
