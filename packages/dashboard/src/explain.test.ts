import { buildVipTable, parseFleet } from '@l4fleet/config';
import { slotOf } from '@l4fleet/maglev';
import { describe, expect, test } from 'vitest';
import { explainFlow } from './explain.js';

const fleet = parseFleet({
  hashSeed: 0x5eed,
  pools: [
    {
      name: 'web',
      members: [
        { name: 'a', address: '198.18.0.21', port: 80 },
        { name: 'b', address: '198.18.0.22', port: 80 },
      ],
    },
  ],
  vips: [{ address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web', tableSize: 251 }],
});
const vip = fleet.vips[0] as (typeof fleet.vips)[number];

describe('explain', () => {
  test.each([
    ['198.18.1.7', 40_000],
    ['198.18.9.9', 1],
    ['198.19.0.1', 65_535],
  ])('explain - %s:%d gets the slot and backend every node computes', (src, sport) => {
    const decided = new Map([['web/a', 'down' as const]]);
    const r = explainFlow(fleet, new Map(), 7, { src, sport, vip: '198.51.100.10:80/tcp' });
    const table = buildVipTable(fleet, vip, new Map());
    const slot = slotOf({ src, sport, dst: vip.address, dport: 80, protocol: 'tcp' }, 251, 0x5eed, '5-tuple');
    expect(r.slot).toBe(slot);
    expect(r.backend).toBe(table.backends[table.slots[slot] as number]?.name);
    expect(r.checksum).toBe(table.checksum);
    expect(r.why[1]).toMatch(new RegExp(`slot ${slot} belongs to ${r.backend}: active, weight 1, no decision yet`));
    // a down member: the flow moves to the one that is up
    expect(explainFlow(fleet, decided, 7, { src, sport, vip: '198.51.100.10:80/tcp' }).backend).toBe('b');
  });

  test('explain - no member up: no backend, and the reason lists the members', () => {
    const decided = new Map([
      ['web/a', 'down' as const],
      ['web/b', 'down' as const],
    ]);
    const r = explainFlow(fleet, decided, 7, { src: '198.18.1.7', sport: 1, vip: '198.51.100.10:80/tcp' });
    expect(r.backend).toBeNull();
    expect(r.why[1]).toBe(
      'no member takes new flows (a active (down), b active (down)): the data plane drops the flow',
    );
  });

  test.each([
    [
      { src: '198.18.1.7', sport: 1, vip: '198.51.100.99:80/tcp' },
      'NOT_FOUND',
      /vip 198\.51\.100\.99:80\/tcp: not in the fleet/,
    ],
    [{ src: '198.18.1.7', sport: 1, vip: 'nope' }, 'BAD_REQUEST', /^vip: /],
    [{ src: 'x.y', sport: 1, vip: '198.51.100.10:80/tcp' }, 'BAD_REQUEST', /^flow: .*x\.y/],
    [{ src: '198.18.1.7', sport: 70_000, vip: '198.51.100.10:80/tcp' }, 'BAD_REQUEST', /flow\.sport: 70000/],
  ])('explain - %j is refused (%s)', (req, code, message) => {
    expect(() => explainFlow(fleet, new Map(), 7, req)).toThrow(
      expect.objectContaining({ code, message: expect.stringMatching(message) }),
    );
  });
});
