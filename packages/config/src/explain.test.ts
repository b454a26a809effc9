import { slotOf } from '@l4fleet/maglev';
import { describe, expect, test } from 'vitest';
import { explainFlow } from './explain.js';
import { parseFleet } from './parse.js';
import { buildVipTable } from './table.js';

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
    { name: 'dns', members: [{ name: 'd', address: '2001:db8::1', port: 53 }] },
  ],
  vips: [
    { address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web', tableSize: 251 },
    { address: '2001:db8::53', port: 53, protocol: 'udp', pool: 'dns', tableSize: 251, hash: 'source-ip' },
  ],
});
const vip = fleet.vips[0] as (typeof fleet.vips)[number];
const to = (src: string, sport: number) => ({ src, sport, dst: '198.51.100.10', dport: 80, protocol: 'tcp' as const });

describe('explainFlow', () => {
  test.each([
    ['198.18.1.7', 40_000],
    ['198.18.9.9', 1],
    ['198.19.0.1', 65_535],
  ])('explain - %s:%d gets the slot and backend every node computes', (src, sport) => {
    const r = explainFlow(fleet, new Map(), to(src, sport));
    const table = buildVipTable(fleet, vip, new Map());
    const slot = slotOf(to(src, sport), 251, 0x5eed, '5-tuple');
    expect(r.slot).toBe(slot);
    expect(r.backend).toBe(table.backends[table.slots[slot] as number]?.name);
    expect(r.checksum).toBe(table.checksum);
    expect(r.flow).toBe(`${src}:${sport} -> 198.51.100.10:80/tcp`);
    expect(r.why[1]).toMatch(new RegExp(`slot ${slot} belongs to ${r.backend}: active, weight 1, no decision yet`));
    // a down member: the flow moves to the one that is up
    expect(explainFlow(fleet, new Map([['web/a', 'down' as const]]), to(src, sport)).backend).toBe('b');
  });

  test('explain - an IPv6 VIP written another way is found; source-ip hashes the source only', () => {
    const r = explainFlow(fleet, new Map(), {
      src: '2001:DB8:1:0::9',
      sport: 5000,
      dst: '2001:db8:0::53',
      dport: 53,
      protocol: 'udp',
    });
    expect(r.vip).toBe('[2001:db8::53]:53/udp');
    expect(r.flow).toBe('[2001:db8:1::9]:5000 -> [2001:db8::53]:53/udp');
    expect(r.slot).toBe(
      slotOf(
        { src: '2001:db8:1::9', sport: 1, dst: '2001:db8::53', dport: 1, protocol: 'udp' },
        251,
        0x5eed,
        'source-ip',
      ),
    );
    expect(r.backend).toBe('d');
    expect(r.why[0]).toMatch(/^hash of the source address with seed 0x5eed picks slot \d+ of 251/);
  });

  test('explain - a backup serves only when the others are down, and says so', () => {
    const withBackup = parseFleet({
      ...fleet,
      pools: fleet.pools.map((p) =>
        p.name === 'web'
          ? { ...p, members: [...p.members, { name: 's', address: '198.18.0.29', port: 80, backup: true }] }
          : p,
      ),
    });
    expect(['a', 'b']).toContain(explainFlow(withBackup, new Map(), to('198.18.1.7', 1)).backend);
    const down = new Map([
      ['web/a', 'down' as const],
      ['web/b', 'down' as const],
    ]);
    const r = explainFlow(withBackup, down, to('198.18.1.7', 1));
    expect(r.backend).toBe('s');
    expect(r.why[1]).toMatch(/belongs to s \(a backup: no other member takes flows\): active, weight 1/);
  });

  test('explain - no member up: no backend, and the reason lists the members', () => {
    const decided = new Map([
      ['web/a', 'down' as const],
      ['web/b', 'down' as const],
    ]);
    const r = explainFlow(fleet, decided, to('198.18.1.7', 1));
    expect(r.backend).toBeNull();
    expect(r.address).toBeNull();
    expect(r.why[1]).toBe(
      'no member takes new flows (a active (down), b active (down)): the data plane drops the flow',
    );
  });

  test.each([
    [
      { ...to('198.18.1.7', 1), dst: '198.51.100.99' },
      'VIP_NOT_FOUND',
      /^vip 198\.51\.100\.99:80\/tcp: not in the fleet$/,
    ],
    [{ ...to('198.18.1.7', 1), protocol: 'udp' as const }, 'VIP_NOT_FOUND', /^vip 198\.51\.100\.10:80\/udp: /],
    [to('x.y', 1), 'INVALID', /^flow\.src: "x\.y" is not an IPv4 or IPv6 address$/],
    [{ ...to('198.18.1.7', 1), dst: 'nope' }, 'INVALID', /^flow\.dst: "nope"/],
    [to('198.18.1.7', 70_000), 'INVALID', /^flow\.sport: 70000 is not a port/],
    [to('2001:db8::9', 1), 'INVALID', /^flow: src 2001:db8::9 is IPv6 but dst 198\.51\.100\.10 is IPv4$/],
  ])('explain - %j is refused (%s)', (flow, code, message) => {
    expect(() => explainFlow(fleet, new Map(), flow)).toThrow(
      expect.objectContaining({ name: 'ConfigError', code, message: expect.stringMatching(message) }),
    );
  });

  test("a source outside the VIP's sourceRanges: not admitted, no backend, and why names the owner it would get", () => {
    const ranged = parseFleet({
      ...fleet,
      vips: [{ ...vip, sourceRanges: ['198.18.0.0/16', '10.0.0.0/8'] }],
    });
    const inside = explainFlow(ranged, new Map(), to('198.18.1.7', 40_000));
    expect(inside.admitted).toBe(true);
    expect(inside.backend).toBe(explainFlow(fleet, new Map(), to('198.18.1.7', 40_000)).backend);
    const outside = explainFlow(ranged, new Map(), to('198.19.0.1', 40_000));
    const owner = explainFlow(fleet, new Map(), to('198.19.0.1', 40_000)).backend;
    expect(outside).toMatchObject({ admitted: false, backend: null, address: null });
    expect(outside.why[0]).toBe(
      `198.19.0.1 is outside the VIP's sourceRanges (2 prefixes): every node drops the flow (drops{reason="source"}); admitted, it would go to ${owner}`,
    );
    expect(explainFlow(fleet, new Map(), to('198.19.0.1', 40_000)).admitted).toBe(true);
  });

  test('explain - a draining NAT TCP VIP: an open connection goes on only on the node holding its conntrack entry', () => {
    const nat = parseFleet({
      hashSeed: 0x5eed,
      pools: [{ name: 'web', forwarding: 'nat', members: [{ name: 'a', address: '198.18.0.21', port: 8080 }] }],
      vips: [{ address: '198.51.100.10', port: 80, protocol: 'tcp', pool: 'web', tableSize: 251, state: 'draining' }],
    });
    const r = explainFlow(nat, new Map(), to('198.18.1.7', 40_000));
    expect(r.why[0]).toMatch(
      /; an open TCP connection goes on to a on the node that holds its conntrack entry \(NAT: on a node ECMP moves it to it ends\)$/,
    );
    expect(r.why[0]).not.toContain('also on a node ECMP moves it to');
  });
});
