import { parseFleet } from '@l4fleet/config';
import { describe, expect, test } from 'vitest';
import {
  announcedVips,
  checkedMembers,
  healthTargets,
  type PlannedTable,
  plannedRoutes,
  planTables,
  toDataPlaneTable,
} from './plan.js';

const fleet = parseFleet({
  hashSeed: 7,
  pools: [
    {
      name: 'web',
      members: [
        { name: 'a', address: '198.18.0.21', port: 80 },
        { name: 'b', address: '198.18.0.22', port: 80, state: 'disabled' },
      ],
    },
    { name: 'api', members: [{ name: 'x', address: '198.18.0.31', port: 443 }] },
    { name: 'v6', healthCheck: { type: 'none' }, members: [{ name: 'y', address: '2001:db8::31', port: 53 }] },
    { name: 'unused', members: [{ name: 'z', address: '198.18.0.41', port: 80 }] },
  ],
  vips: [
    { address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web', tableSize: 251 },
    { address: '198.51.100.10', port: 443, protocol: 'tcp', pool: 'api', tableSize: 251 },
    { address: '2001:db8::53', port: 53, protocol: 'udp', pool: 'v6', tableSize: 251 },
  ],
});
const ctx = { nextHop4: '198.18.0.11', communities: [] };

describe('plan - routes', () => {
  test('one route per VIP address, kept while any VIP on it has a usable backend', () => {
    const down = new Map([['web/a', 'down' as const]]);
    const tables = planTables(fleet, down);
    expect([...plannedRoutes(tables, ctx).keys()]).toEqual(['198.51.100.10/32']);
    expect(announcedVips(tables, plannedRoutes(tables, ctx))).toEqual(['198.51.100.10:443/tcp']);
    const allDown = planTables(fleet, new Map([...down, ['api/x', 'down' as const]]));
    expect(plannedRoutes(allDown, ctx).size).toBe(0);
  });

  test('an IPv6 VIP is announced only with an IPv6 next hop', () => {
    const tables = planTables(fleet, new Map());
    expect(plannedRoutes(tables, ctx).has('2001:db8::53/128')).toBe(false);
    expect(plannedRoutes(tables, { ...ctx, nextHop6: '2001:db8:1::11' }).get('2001:db8::53/128')?.nextHop).toBe(
      '2001:db8:1::11',
    );
  });
});

describe('plan - tables', () => {
  test('unchanged VIPs keep their table object; a changed pool rebuilds only its VIPs', () => {
    const cache = new Map<string, PlannedTable & { inputs: string }>();
    const first = planTables(fleet, new Map(), cache);
    const again = planTables(fleet, new Map(), cache);
    expect(again.map((t) => t.table)).toEqual(first.map((t) => t.table));
    expect(again.every((t, i) => t.table === first[i]?.table)).toBe(true);
    const changed = planTables(fleet, new Map([['web/a', 'down']]), cache);
    expect(changed[0]?.table).not.toBe(first[0]?.table);
    expect(changed[1]?.table).toBe(first[1]?.table);
    expect(changed[0]?.usableBackends).toBe(0);
  });

  test('members probed: served pools with a real check, disabled members left out', () => {
    expect(checkedMembers(fleet)).toEqual(['web/a', 'api/x']);
    expect(healthTargets(fleet).map((t) => `${t.key}@${t.address}:${t.port}`)).toEqual([
      'web/a@198.18.0.21:80',
      'api/x@198.18.0.31:443',
    ]);
  });

  test("a target carries its pool's checks and healthChecksRequired (absent: all)", () => {
    const quorum = parseFleet({
      hashSeed: 7,
      pools: [
        {
          name: 'web',
          healthCheck: { type: 'tcp' },
          additionalHealthChecks: [{ type: 'tcp', port: 9100 }],
          healthChecksRequired: 1,
          members: [{ name: 'a', address: '198.18.0.21', port: 80 }],
        },
      ],
      vips: [{ address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web' }],
    });
    expect(healthTargets(quorum).map((t) => [t.checks.length, t.required])).toEqual([[2, 1]]);
    expect(healthTargets(fleet).every((t) => t.required === undefined)).toBe(true);
  });
});

describe('plan - forwarding', () => {
  const withForwarding = (forwarding: string, guePort?: number) =>
    parseFleet({
      hashSeed: 7,
      pools: [{ name: 'web', forwarding, guePort, members: [{ name: 'a', address: '198.18.0.21', port: 80 }] }],
      vips: [{ address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web', tableSize: 251 }],
    });

  test('onMemberDown - the data plane learns the setting and which backends are down; a down member is re-planned', () => {
    const f = (onMemberDown: 'keep' | 'reselect', state = 'active') =>
      parseFleet({
        hashSeed: 7,
        pools: [
          {
            name: 'dns',
            onMemberDown,
            members: [
              { name: 'a', address: '198.18.0.21', port: 53, state },
              { name: 'b', address: '198.18.0.22', port: 53 },
            ],
          },
        ],
        vips: [{ address: '198.51.100.53', port: 53, protocol: 'udp', pool: 'dns', tableSize: 251 }],
      });
    const down = new Map([['dns/a', 'down' as const]]);
    const cache = new Map();
    const [draining] = planTables(f('reselect', 'draining'), new Map(), cache);
    const [isDown] = planTables(f('reselect'), down, cache);
    // Both give `a` weight 0, so the slots are equal: only the decided status tells them apart.
    expect(Array.from(isDown!.table.slots)).toEqual(Array.from(draining!.table.slots));
    expect(isDown!.table).not.toBe(draining!.table);
    expect(toDataPlaneTable(isDown!.table)).toMatchObject({
      onMemberDown: 'reselect',
      backends: [{ name: 'a', down: true }, { name: 'b' }],
    });
    expect(toDataPlaneTable(draining!.table).backends[0]).not.toHaveProperty('down');
    const [keep] = planTables(f('keep'), down, cache);
    expect(toDataPlaneTable(keep!.table)).not.toHaveProperty('onMemberDown');
  });

  test('backupServing - set while only backup members take flows', () => {
    const f = parseFleet({
      hashSeed: 7,
      pools: [
        {
          name: 'web',
          members: [
            { name: 'a', address: '198.18.0.21', port: 80 },
            { name: 's', address: '198.18.0.29', port: 80, backup: true },
          ],
        },
      ],
      vips: [{ address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web', tableSize: 251 }],
    });
    const [up] = planTables(f, new Map());
    expect([up!.usableBackends, up!.backupServing]).toEqual([1, false]);
    const [down] = planTables(f, new Map([['web/a', 'down' as const]]));
    expect([down!.usableBackends, down!.backupServing]).toEqual([1, true]);
    const [none] = planTables(
      f,
      new Map([
        ['web/a', 'down' as const],
        ['web/s', 'down' as const],
      ]),
    );
    expect([none!.usableBackends, none!.backupServing]).toEqual([0, false]);
  });

  test('backupServing - set while the backups serve beside the primaries left (minActiveMembers)', () => {
    const f = parseFleet({
      hashSeed: 7,
      pools: [
        {
          name: 'web',
          minActiveMembers: 2,
          members: [
            { name: 'a', address: '198.18.0.21', port: 80 },
            { name: 'b', address: '198.18.0.22', port: 80 },
            { name: 's', address: '198.18.0.29', port: 80, backup: true },
          ],
        },
      ],
      vips: [{ address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web', tableSize: 251 }],
    });
    const [up] = planTables(f, new Map());
    expect([up!.usableBackends, up!.backupServing]).toEqual([2, false]);
    const [one] = planTables(f, new Map([['web/b', 'down' as const]]));
    expect([one!.usableBackends, one!.backupServing]).toEqual([2, true]);
  });

  test("the pool's forwarding reaches the data plane and a change of it re-plans the table", () => {
    const cache = new Map();
    const [l2] = planTables(withForwarding('l2'), new Map(), cache);
    const [gue] = planTables(withForwarding('gue', 7000), new Map(), cache);
    expect(toDataPlaneTable(l2!.table)).toMatchObject({ forwarding: 'l2' });
    expect(toDataPlaneTable(gue!.table)).toMatchObject({ forwarding: 'gue', guePort: 7000 });
    // Same slots, other forwarding: nodes must see a different checksum, or the re-apply would be skipped.
    expect(gue!.table.checksum).not.toBe(l2!.table.checksum);
  });
});
