import { parseFleet } from '@l4fleet/config';
import { describe, expect, test } from 'vitest';
import { planTables, tablesSignature, toDataPlaneTable } from './plan.js';

const fleetWith = (idleTimeoutS: number) =>
  parseFleet({
    hashSeed: 7,
    pools: [
      {
        name: 'web',
        forwarding: 'nat',
        members: [
          { name: 'a', address: '198.18.0.21', port: 8443 },
          { name: 'b', address: '198.18.0.22', port: 8443 },
        ],
      },
    ],
    vips: [
      { address: '198.51.100.10', port: 443, protocol: 'tcp', pool: 'web', tableSize: 251, profile: { idleTimeoutS } },
    ],
  });

describe('plan - nat and profiles (issue 18)', () => {
  test('the data plane table carries forwarding nat, the members on their own port, and the VIP profile', () => {
    const [t] = planTables(fleetWith(60), new Map());
    const d = toDataPlaneTable(t?.table as NonNullable<typeof t>['table']);
    expect(d.forwarding).toBe('nat');
    expect(d.vip.port).toBe(443);
    expect(d.backends.map((b) => b.port)).toEqual([8443, 8443]);
    expect(d.profile).toEqual({ idleTimeoutS: 60, tcpHandshakeTimeoutS: 10, tcpCloseTimeoutS: 10, onTimeout: 'drop' });
  });

  test('a changed profile rebuilds the table and changes the signature (the data plane is re-applied)', () => {
    const cache = new Map();
    const before = planTables(fleetWith(60), new Map(), cache);
    const after = planTables(fleetWith(30), new Map(), cache);
    expect(after[0]?.table).not.toBe(before[0]?.table);
    expect(toDataPlaneTable(after[0]?.table as NonNullable<(typeof after)[0]>['table']).profile?.idleTimeoutS).toBe(30);
    expect(tablesSignature(after)).not.toBe(tablesSignature(before));
  });

  test('sourceRanges: carried to the data plane; a change of them alone rebuilds the table and the signature, not the checksum', () => {
    const ranged = (sourceRanges?: string[]) => {
      const f = fleetWith(60);
      return { ...f, vips: f.vips.map((v) => (sourceRanges ? { ...v, sourceRanges } : v)) };
    };
    const cache = new Map();
    const none = planTables(ranged(), new Map(), cache);
    const some = planTables(ranged(['198.18.0.0/15']), new Map(), cache);
    const other = planTables(ranged(['10.0.0.0/8']), new Map(), cache);
    const table = (p: typeof none) => p[0]?.table as NonNullable<(typeof none)[0]>['table'];
    expect(toDataPlaneTable(table(none)).sourceRanges).toBeUndefined();
    expect(toDataPlaneTable(table(some)).sourceRanges).toEqual(['198.18.0.0/15']);
    expect(table(other)).not.toBe(table(some));
    expect(new Set([none, some, other].map(tablesSignature)).size).toBe(3);
    expect(new Set([none, some, other].map((p) => table(p).checksum)).size).toBe(1);
  });
});
