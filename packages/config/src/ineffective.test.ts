import { describe, expect, test } from 'vitest';
import { ineffectiveSettings } from './ineffective.js';
import { BPF_MAX_VIP_MEMBERS } from './limits.js';
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

  describe('VIP x member pairs beyond what bpf nodes hold', () => {
    /** `vips` VIPs on one pool of `members` members; `extra` VIP fields for the VIPs from index `from` on. */
    const wide = (vips: number, members: number, extra: object = {}, from = vips) =>
      parseFleet({
        hashSeed: 7,
        pools: [
          {
            name: 'web',
            members: Array.from({ length: members }, (_x, i) => ({
              name: `m${i}`,
              address: `198.18.${i >> 8}.${i & 255}`,
              port: 80,
              ...(i === 0 ? { state: 'disabled' } : {}),
            })),
          },
        ],
        vips: Array.from({ length: vips }, (_x, v) => ({
          address: `198.51.100.${v}`,
          port: 80,
          protocol: 'tcp',
          pool: 'web',
          ...(v >= from ? extra : {}),
        })),
      });

    test('66 VIPs on one pool of 1,001 members (one disabled): 66,000 pairs, noted (written anyway)', () => {
      expect(BPF_MAX_VIP_MEMBERS).toBe(65_536);
      expect(ineffectiveSettings(wide(66, 1_001))).toEqual([
        {
          path: 'vips',
          message:
            'bpf nodes hold at most 65,536 VIP x member pairs; this fleet has 66,000 (each served VIP times the members of its pool not disabled): bpf nodes will refuse it; nftables and proxy nodes serve it',
        },
      ]);
    });

    test('65 VIPs (65,000 pairs), and 66 with one disabled, are within: no note', () => {
      expect(ineffectiveSettings(wide(65, 1_001))).toEqual([]);
      expect(ineffectiveSettings(wide(66, 1_001, { state: 'disabled' }, 65))).toEqual([]);
      // A draining VIP keeps its table, so it counts.
      expect(ineffectiveSettings(wide(66, 1_001, { state: 'draining' }, 65)).map((n) => n.path)).toEqual(['vips']);
    });
  });
});
