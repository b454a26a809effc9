import { describe, expect, test } from 'vitest';
import { ineffectiveSettings } from './ineffective.js';
import { parseFleet } from './parse.js';
import { buildVipTable } from './table.js';

const member = (name: string, last: number, extra: object = {}) => ({
  name,
  address: `198.18.0.${last}`,
  port: 80,
  ...extra,
});
const fleetOf = (pool: object, tableSize = 251) =>
  parseFleet({
    hashSeed: 7,
    pools: [{ name: 'web', ...pool }],
    vips: [{ address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web', tableSize }],
  });

describe('ineffectiveSettings: valid settings apply notes', () => {
  test('a member whose weight share is under one slot is named, with the VIP and the table size', () => {
    const fleet = fleetOf({ members: [member('big', 21, { weight: 65_535 }), member('tiny', 22, { weight: 1 })] });
    // The note is about the table every node builds: the member really owns no slot there.
    const table = buildVipTable(fleet, fleet.vips[0] as (typeof fleet.vips)[number], new Map());
    const tiny = table.backends.findIndex((m) => m.name === 'tiny');
    expect(table.slots.includes(tiny)).toBe(false);
    expect(ineffectiveSettings(fleet)).toEqual([
      {
        path: 'pools[0].members[1].weight',
        message: expect.stringContaining(
          `1 gives member "tiny" no slot of vips[0] 198.51.100.10:80/tcp's 251-slot table`,
        ),
      },
    ]);
  });

  test('a small share that still owns a slot, and a drained member (weight 0), are not noted', () => {
    expect(
      ineffectiveSettings(fleetOf({ members: [member('big', 21, { weight: 200 }), member('small', 22)] })),
    ).toEqual([]);
    expect(ineffectiveSettings(fleetOf({ members: [member('a', 21), member('drained', 22, { weight: 0 })] }))).toEqual(
      [],
    );
  });

  test('a member noted once however many VIPs use its pool', () => {
    const fleet = parseFleet({
      pools: [{ name: 'web', members: [member('big', 21, { weight: 65_535 }), member('tiny', 22, { weight: 1 })] }],
      vips: [
        { address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web', tableSize: 251 },
        { address: '198.51.100.11', port: 80, protocol: 'tcp', pool: 'web', tableSize: 251 },
      ],
    });
    expect(ineffectiveSettings(fleet).map((n) => n.path)).toEqual(['pools[0].members[1].weight']);
  });

  test('minActiveMembers above the primaries (with backups) says the backups always serve', () => {
    const pool = (minActiveMembers: number) => ({
      members: [member('a', 21), member('b', 22), member('s', 29, { backup: true })],
      minActiveMembers,
    });
    expect(ineffectiveSettings(fleetOf(pool(3)))).toEqual([
      {
        path: 'pools[0].minActiveMembers',
        message:
          "3 is more than the pool's 2 primaries (members not marked backup): its backups take new flows always, with every primary up",
      },
    ]);
    expect(ineffectiveSettings(fleetOf(pool(2)))).toEqual([]);
  });
});
