import { NO_BACKEND } from '@l4fleet/maglev';
import { describe, expect, test } from 'vitest';
import { diffFleets } from './diff.js';
import { ConfigError } from './errors.js';
import { explainFlow } from './explain.js';
import { parseFleet } from './parse.js';
import {
  type MemberRamps,
  nextRampStepMs,
  RAMP_PERCENTS,
  rampPercentAt,
  rampSinceForPercent,
  startedMembers,
} from './slow-start.js';
import { buildVipTable, tableInputsOf } from './table.js';
import type { Fleet } from './types.js';

const SIZE = 4_099;
const fleetOf = (slowStartS?: number, weight = 1): Fleet =>
  parseFleet({
    hashSeed: 7,
    pools: [
      {
        name: 'web',
        healthCheck: { type: 'tcp' },
        ...(slowStartS === undefined ? {} : { slowStartS }),
        members: [1, 2, 3, 4].map((i) => ({ name: `be${i}`, address: `198.18.0.${i}`, port: 80, weight })),
      },
    ],
    vips: [{ address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web', tableSize: SIZE }],
  });

const slotsOf = (f: Fleet, ramps: MemberRamps, name: string): number => {
  const t = buildVipTable(f, f.vips[0]!, new Map(), undefined, ramps);
  const i = t.backends.findIndex((b) => b.name === name);
  return t.slots.filter((s) => s === i && s !== NO_BACKEND).length;
};

const problems = (raw: unknown): string[] => {
  try {
    parseFleet(raw);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems.map((p) => `${p.path}: ${p.message}`);
    throw err;
  }
  return [];
};

describe('config slow start - the setting', () => {
  test('absent or 0 is off and not written back; seconds are kept; a change shows in the diff', () => {
    expect(fleetOf().pools[0]!.slowStartS).toBeUndefined();
    expect('slowStartS' in fleetOf(0).pools[0]!).toBe(false);
    expect(fleetOf(30).pools[0]!.slowStartS).toBe(30);
    expect(parseFleet(JSON.parse(JSON.stringify(fleetOf(30)))).pools[0]!.slowStartS).toBe(30);
    const d = diffFleets(fleetOf(), fleetOf(30));
    expect(d.changes).toContainEqual({ kind: 'changed', subject: 'pool web', detail: 'slowStartS 0 -> 30' });
  });

  test.each([
    [-1, '-1'],
    [3_601, '3601'],
    [1.5, '1.5'],
    ['10', '"10"'],
  ])('%s is refused, naming the field and the value', (v, shown) => {
    const raw = JSON.parse(JSON.stringify(fleetOf()));
    raw.pools[0].slowStartS = v;
    expect(problems(raw)).toEqual([`pools[0].slowStartS: ${shown} is not a slow start in seconds (0-3600; 0 is off)`]);
  });
});

describe('config slow start - steps', () => {
  test('each step lasts a quarter of slowStartS; then the ramp is over', () => {
    const since = 1_000_000;
    expect(RAMP_PERCENTS).toEqual([20, 40, 60, 80]);
    expect(rampPercentAt(since, since, 8)).toBe(20);
    expect(rampPercentAt(since, since + 1_999, 8)).toBe(20);
    expect(rampPercentAt(since, since + 2_000, 8)).toBe(40);
    expect(rampPercentAt(since, since + 6_000, 8)).toBe(80);
    expect(rampPercentAt(since, since + 8_000, 8)).toBeUndefined();
    expect(rampPercentAt(since, since - 5, 8)).toBe(20); // a clock stepped back does not skip the ramp
    expect(rampPercentAt(since, since, 0)).toBeUndefined();
    expect(nextRampStepMs(since, since, 8)).toBe(since + 2_000);
    expect(nextRampStepMs(since, since + 7_000, 8)).toBe(since + 8_000);
    expect(nextRampStepMs(since, since, 3)).toBe(since + 750);
  });

  test('rampSinceForPercent: the start of the first step not below a percent, at now (a re-based ramp)', () => {
    const now = 1_000_000;
    expect(rampSinceForPercent(80, now, 8)).toBe(now - 6_000);
    expect(rampPercentAt(now - 6_000, now, 8)).toBe(80);
    expect(rampSinceForPercent(20, now, 8)).toBe(now);
    expect(rampSinceForPercent(50, now, 8)).toBe(now - 4_000); // between steps: the next one up (60)
    expect(rampSinceForPercent(90, now, 8)).toBeUndefined(); // above the last step: the whole weight
    expect(rampSinceForPercent(40, now, 0)).toBeUndefined();
  });
});

describe('config slow start - tables', () => {
  test("a ramping member's share of the slots follows its step; the others' tables agree on every node", () => {
    const f = fleetOf(20, 3);
    const whole = slotsOf(f, new Map(), 'be4');
    expect(whole).toBeGreaterThan(SIZE / 4 - 20);
    const shares = RAMP_PERCENTS.map((percent) => slotsOf(f, new Map([['web/be4', { percent, sinceMs: 0 }]]), 'be4'));
    // Maglev places by weight / maxWeight (§3.4): with 3 others at 3, be4 at 3 x p% gets about p/(300+p) of them.
    RAMP_PERCENTS.forEach((p, i) => {
      const expected = (SIZE * (3 * p)) / 100 / (9 + (3 * p) / 100);
      expect(Math.abs((shares[i] as number) - expected)).toBeLessThan(SIZE * 0.01);
    });
    for (let i = 1; i < shares.length; i++) expect(shares[i]).toBeGreaterThan(shares[i - 1] as number);
    const ramped = buildVipTable(
      f,
      f.vips[0]!,
      new Map(),
      undefined,
      new Map([['web/be4', { percent: 40, sinceMs: 0 }]]),
    );
    const again = buildVipTable(
      f,
      f.vips[0]!,
      new Map(),
      undefined,
      new Map([['web/be4', { percent: 40, sinceMs: 9 }]]),
    );
    expect(again.checksum).toBe(ramped.checksum); // only the step makes the table, not when the ramp began
    expect(ramped.checksum).not.toBe(buildVipTable(f, f.vips[0]!, new Map()).checksum);
  });

  test('a ramp of a member decided down changes nothing (down wins); the history records the ramped weight', () => {
    const f = fleetOf(20, 5);
    const down = new Map([['web/be4', 'down' as const]]);
    const ramps = new Map([['web/be4', { percent: 20, sinceMs: 0 }]]);
    expect(buildVipTable(f, f.vips[0]!, down, undefined, ramps).checksum).toBe(
      buildVipTable(f, f.vips[0]!, down).checksum,
    );
    expect(tableInputsOf(f.pools[0]!, new Map(), ramps).map((m) => m.weight)).toEqual([5, 5, 5, 1]);
  });

  test('explain names the step of the member that owns the slot', () => {
    const f = fleetOf(20);
    const ramps = new Map([1, 2, 3, 4].map((i) => [`web/be${i}`, { percent: 60, sinceMs: 0 }]));
    const r = explainFlow(
      f,
      new Map(),
      { src: '198.18.9.9', sport: 40_000, dst: '198.51.100.10', dport: 80, protocol: 'tcp' },
      undefined,
      ramps,
    );
    expect(r.why[1]).toMatch(/no decision yet \(counts as up\), slow start at 60% of its weight/);
  });
});

describe('config slow start - started members', () => {
  test('each member of the earlier pool is read a bounded number of times, not once per member of the new one', () => {
    // Runs on every node at every fleet change: a scan of the earlier pool per member was quadratic (100,000 members
    // blocked the event loop for 30 s). Count the reads of the earlier pool's members instead of timing them.
    const n = 2_000;
    const poolOf = (state: 'active' | 'draining') => ({
      name: 'web',
      slowStartS: 8,
      healthCheck: { type: 'tcp' },
      members: Array.from({ length: n }, (_, i) => ({
        name: `be${i}`,
        address: `198.18.${i >> 8}.${i & 255}`,
        port: 80,
        ...(i % 2 === 1 ? { state } : {}),
      })),
    });
    const vips = [{ address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web' }];
    const before = parseFleet({ pools: [poolOf('draining')], vips });
    const after = parseFleet({ pools: [poolOf('active')], vips });
    let reads = 0;
    const counted = new Proxy(before.pools[0]!.members, {
      get(target, key, receiver) {
        if (typeof key === 'string' && /^\d+$/.test(key)) reads++;
        return Reflect.get(target, key, receiver);
      },
    });
    const spied: Fleet = { ...before, pools: [{ ...before.pools[0]!, members: counted }] };
    const started = startedMembers(spied, after);
    expect(started.size).toBe(n / 2);
    expect(started.has('web/be1')).toBe(true);
    expect(started.has('web/be0')).toBe(false);
    expect(reads).toBeLessThanOrEqual(2 * n);
  });
});
