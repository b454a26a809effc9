import { type Fleet, parseFleet } from '@l4fleet/config';
import { describe, expect, test } from 'vitest';
import { createManualClock } from '../clock.js';
import { createPendingRamps, PENDING_RAMP_MS } from './pending-ramps.js';

const fleetOf = (b: string, slowStartS = 30): Fleet =>
  parseFleet({
    hashSeed: 7,
    pools: [
      {
        name: 'web',
        healthCheck: { type: 'tcp' },
        slowStartS,
        members: [
          { name: 'a', address: '198.18.0.1', port: 80 },
          { name: 'b', address: '198.18.0.2', port: 80, state: b },
        ],
      },
    ],
    vips: [{ address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web' }],
  });

function setup() {
  const clock = createManualClock(1_700_000_000_000);
  let expired = 0;
  const pending = createPendingRamps({ clock, onExpired: () => expired++ });
  return { clock, pending, expired: () => expired };
}

const percents = (m: ReadonlyMap<string, { percent: number }>) =>
  Object.fromEntries([...m].map(([k, r]) => [k, r.percent]));

describe('pending ramps - a started member waits at the first step for the aggregator', () => {
  test('held from the fleet change until the decided ramp names it; the record then wins', () => {
    const { pending } = setup();
    pending.fleetChanged(undefined, fleetOf('draining')); // a start: nothing to hold
    expect(percents(pending.merged(new Map()))).toEqual({});
    pending.fleetChanged(fleetOf('draining'), fleetOf('active'));
    expect(percents(pending.merged(new Map()))).toEqual({ 'web/b': 20 });
    const record = new Map([['web/b', { percent: 40, sinceMs: 5 }]]);
    pending.decided(record);
    expect(pending.merged(record)).toBe(record);
    expect(pending.merged(new Map()).size).toBe(0); // the ramp ended: the record says so, nothing held
  });

  test(`let go after ${PENDING_RAMP_MS} ms when no ramp comes (no aggregator): the tables are planned again`, async () => {
    const { clock, pending, expired } = setup();
    pending.fleetChanged(fleetOf('disabled'), fleetOf('active'));
    await clock.advance(PENDING_RAMP_MS - 1);
    expect(pending.merged(new Map()).size).toBe(1);
    expect(expired()).toBe(0);
    await clock.advance(1);
    expect(pending.merged(new Map()).size).toBe(0);
    expect(expired()).toBe(1);
    pending.close();
  });

  test(`the wall clock stepped back an hour: still let go after ${PENDING_RAMP_MS} ms`, async () => {
    const { clock, pending, expired } = setup();
    pending.fleetChanged(fleetOf('disabled'), fleetOf('active'));
    clock.stepWall(-3_600_000); // NTP: steady time and the timers go on
    await clock.advance(PENDING_RAMP_MS);
    expect(pending.merged(new Map()).size).toBe(0);
    expect(expired()).toBe(1);
    pending.close();
  });

  test('not held: a ramp the record already has, slow start off, a member drained again', () => {
    const { pending } = setup();
    pending.decided(new Map([['web/b', { percent: 20, sinceMs: 1 }]]));
    pending.fleetChanged(fleetOf('draining'), fleetOf('active'));
    expect(pending.merged(new Map()).size).toBe(0);
    pending.decided(new Map());
    pending.fleetChanged(fleetOf('draining', 0), fleetOf('active', 0));
    expect(pending.merged(new Map()).size).toBe(0);
    pending.fleetChanged(fleetOf('draining'), fleetOf('active'));
    pending.fleetChanged(fleetOf('active'), fleetOf('draining'));
    expect(pending.merged(new Map()).size).toBe(0);
    pending.close();
  });
});
