import { parseFleet } from '@l4fleet/config';
import { describe, expect, test } from 'vitest';
import { createDryRunDataPlane } from './dry-run.js';
import { type PlannedTable, planTables, toDataPlaneTable } from './plan.js';

const fleet = (weightB: number) =>
  parseFleet({
    hashSeed: 1,
    pools: [
      {
        name: 'web',
        members: [
          { name: 'a', address: '198.18.0.21', port: 80 },
          { name: 'b', address: '198.18.0.22', port: 80, weight: weightB },
        ],
      },
      { name: 'api', members: [{ name: 'x', address: '198.18.0.31', port: 443 }] },
    ],
    vips: [
      { address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web', tableSize: 251 },
      { address: '198.51.100.11', port: 443, protocol: 'tcp', pool: 'api', tableSize: 251 },
    ],
  });

describe('dry-run data plane', () => {
  test('reports added, updated (with the slots that moved), unchanged and removed VIPs', async () => {
    const dp = createDryRunDataPlane();
    const cache = new Map<string, PlannedTable & { inputs: string }>();
    const first = planTables(fleet(1), new Map(), cache).map((t) => toDataPlaneTable(t.table));
    expect((await dp.apply(first)).vips.map((v) => v.action)).toEqual(['added', 'added']);
    const second = planTables(fleet(3), new Map(), cache).map((t) => toDataPlaneTable(t.table));
    expect(second[1]).toBe(first[1]);
    const r = await dp.apply(second);
    expect(r.vips.map((v) => v.action)).toEqual(['updated', 'unchanged']);
    expect(r.vips[0]?.slotsChanged).toBeGreaterThan(0);
    expect(r.vips[0]?.slotsChanged).toBeLessThan(251);
    const removed = await dp.apply([second[0] as (typeof second)[number]]);
    expect(removed.vips.map((v) => `${v.vip}:${v.action}`)).toEqual([
      '198.51.100.10:80/tcp:unchanged',
      '198.51.100.11:443/tcp:removed',
    ]);
    expect(dp.tables.length).toBe(1);
  });

  test('verify: nothing to repair, transactions 0, before and after an apply', async () => {
    const dp = createDryRunDataPlane();
    expect(await dp.verify()).toMatchObject({ vips: [], transactions: 0 });
    await dp.apply(planTables(fleet(1), new Map(), new Map()).map((t) => toDataPlaneTable(t.table)));
    const r = await dp.verify();
    expect(r.transactions).toBe(0);
    expect(r.vips.map((v) => v.action)).toEqual(['unchanged', 'unchanged']);
    expect(dp.applies).toBe(1);
  });
});
