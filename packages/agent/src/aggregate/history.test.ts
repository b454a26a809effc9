import { buildVipTable, type DecidedStatus, NO_RAMPS, parseFleet } from '@l4fleet/config';
import { describe, expect, test } from 'vitest';
import { nextTableHistory } from './history.js';

const fleetOf = (n: number, forwarding = 'gue', retainS = 60) =>
  parseFleet({
    hashSeed: 9,
    pools: [
      {
        name: 'web',
        forwarding,
        secondChance: { retainS },
        members: Array.from({ length: n }, (_v, i) => ({ address: `198.18.0.${i + 1}`, port: 80 })),
      },
      { name: 'idle', forwarding, members: [{ address: '198.18.1.1', port: 80 }] },
    ],
    vips: [{ address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web', tableSize: 251 }],
  });
const up: DecidedStatus = new Map();

describe('aggregate history - the writer step', () => {
  test('first step records the served pool only; a change keeps the replaced inputs with the time', () => {
    const s1 = nextTableHistory(fleetOf(3), up, NO_RAMPS, new Map(), 1_000);
    expect(s1.changed).toBe(true);
    expect([...s1.history.keys()]).toEqual(['web']);
    expect(nextTableHistory(fleetOf(3), up, NO_RAMPS, s1.history, 2_000).changed).toBe(false);
    const s2 = nextTableHistory(fleetOf(4), up, NO_RAMPS, s1.history, 3_000);
    expect(s2.changed).toBe(true);
    expect(s2.history.get('web')?.earlier).toEqual([{ members: s1.history.get('web')?.current, untilMs: 3_000 }]);
    expect(s2.nextExpiryMs).toBe(63_000);
  });

  test('a decision (member down) is a change too; the nodes then derive it as previous owner', () => {
    const s1 = nextTableHistory(fleetOf(3), up, NO_RAMPS, new Map(), 1_000);
    const down: DecidedStatus = new Map([['web/198.18.0.2:80', 'down']]);
    const s2 = nextTableHistory(fleetOf(3), down, NO_RAMPS, s1.history, 2_000);
    expect(s2.changed).toBe(true);
    const f = fleetOf(3);
    const t = buildVipTable(f, f.vips[0]!, down, s2.history);
    expect([...t.previousSlots!].filter((i) => i === 1).length).toBeGreaterThan(0);
  });

  test('expiry at retainS drops the earlier table; l2 pools and unserved pools are not recorded (removed)', () => {
    const s1 = nextTableHistory(fleetOf(3), up, NO_RAMPS, new Map(), 1_000);
    const s2 = nextTableHistory(fleetOf(4), up, NO_RAMPS, s1.history, 2_000);
    const s3 = nextTableHistory(fleetOf(4), up, NO_RAMPS, s2.history, 62_000);
    expect(s3.changed).toBe(true);
    expect(s3.history.get('web')?.earlier).toEqual([]);
    expect(s3.nextExpiryMs).toBeUndefined();
    const l2 = nextTableHistory(fleetOf(4, 'l2'), up, NO_RAMPS, s3.history, 63_000);
    expect(l2).toMatchObject({ changed: true });
    expect(l2.history.size).toBe(0);
  });

  test("a table the leader recorded moves with its wall clock's steps: it expires retainS of steady time on", () => {
    const s1 = nextTableHistory(fleetOf(3), up, NO_RAMPS, new Map(), 1_000);
    const s2 = nextTableHistory(fleetOf(4), up, NO_RAMPS, s1.history, 2_000);
    // The wall clock stepped an hour forward since: on the wall clock alone the table was an hour old, and dropped.
    const later = 2_000 + 3_600_000 + 10_000;
    expect(nextTableHistory(fleetOf(4), up, NO_RAMPS, s2.history, later).history.get('web')?.earlier).toEqual([]);
    const held = nextTableHistory(fleetOf(4), up, NO_RAMPS, s2.history, later, new Set(), (pool, untilMs) =>
      pool === 'web' && untilMs === 2_000 ? 3_600_000 : undefined,
    );
    expect(held.changed).toBe(true); // written back in the new wall time
    expect(held.history.get('web')?.earlier.map((t) => t.untilMs)).toEqual([3_602_000]);
    expect(held.nextExpiryMs).toBe(3_662_000);
  });

  test('a slow-start ramp takes one place: its steps replace each other, the table from before it stays', () => {
    const f = fleetOf(3, 'gue', 3_600);
    const be3 = 'web/198.18.0.3:80';
    const down: DecidedStatus = new Map([[be3, 'down']]);
    const back: DecidedStatus = new Map([[be3, 'up']]);
    const before = nextTableHistory(f, down, NO_RAMPS, new Map(), 1_000); // be3 down: the table before the ramp
    let h = before.history;
    let steps = before.rampSteps;
    const t0 = h.get('web')!.current;
    [20, 40, 60, 80].forEach((percent, i) => {
      const at = 2_000 + i * 1_000;
      const s = nextTableHistory(f, back, new Map([[be3, { percent, sinceMs: 2_000 }]]), h, at, steps);
      expect(s.changed).toBe(true);
      expect(s.rampSteps).toEqual(new Set(['web']));
      expect(s.history.get('web')!.earlier).toEqual([{ members: t0, untilMs: 2_000 }]);
      h = s.history;
      steps = s.rampSteps;
    });
    const end = nextTableHistory(f, back, NO_RAMPS, h, 6_000, steps);
    expect(end.rampSteps.size).toBe(0);
    expect(end.history.get('web')).toMatchObject({ earlier: [{ members: t0, untilMs: 2_000 }] });
    expect(end.history.get('web')!.current.map((m) => m.weight)).toEqual([1, 1, 1]);
    // So every slot be3 owns after the ramp names its owner from before it (second chance across the return).
    const t = buildVipTable(f, f.vips[0]!, back, end.history);
    const owned = [...t.slots.keys()].filter((i) => t.slots[i] === 2);
    expect(owned.length).toBeGreaterThan(50);
    expect(owned.every((i) => t.previousSlots![i]! >= 0 && t.previousSlots![i] !== 2)).toBe(true);
    // A writer that does not know the current is a step (a new leader) keeps it, as for any change.
    const kept = nextTableHistory(f, back, new Map([[be3, { percent: 40, sinceMs: 2_000 }]]), before.history, 3_000);
    const next = nextTableHistory(f, back, new Map([[be3, { percent: 60, sinceMs: 2_000 }]]), kept.history, 4_000);
    expect(next.history.get('web')!.earlier).toHaveLength(2); // the 40 % step kept: nobody said it was one
    expect(
      nextTableHistory(
        f,
        back,
        new Map([[be3, { percent: 60, sinceMs: 2_000 }]]),
        kept.history,
        4_000,
        kept.rampSteps,
      ).history.get('web')!.earlier,
    ).toHaveLength(1);
  });
});
