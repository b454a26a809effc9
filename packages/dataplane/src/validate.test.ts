import { buildTable } from '@l4fleet/maglev';
import { describe, expect, test } from 'vitest';
import { DataPlaneError } from './errors.js';
import type { VipTable } from './types.js';
import { validateDesired } from './validate.js';

const backends = [
  { name: 'a', address: '198.18.0.1', port: 80 },
  { name: 'b', address: '198.18.0.2', port: 80 },
];
const good: VipTable = {
  vip: { address: '198.18.2.1', port: 80, protocol: 'tcp' },
  hash: '5-tuple',
  seed: 1,
  backends,
  slots: buildTable(backends, 13),
};

describe('validateDesired', () => {
  test.each([
    ['bad VIP address', { ...good, vip: { ...good.vip, address: '198.18.2' } }, 'VIP_INVALID', '198.18.2'],
    ['bad port', { ...good, vip: { ...good.vip, port: 0 } }, 'VIP_INVALID', 'vip.port: 0'],
    ['bad protocol', { ...good, vip: { ...good.vip, protocol: 'sctp' } }, 'VIP_INVALID', 'sctp'],
    ['bad seed', { ...good, seed: -1 }, 'VIP_INVALID', 'seed -1'],
    [
      'backend family',
      { ...good, backends: [backends[0], { ...backends[1], address: '2001:db8::2' }] },
      'BACKEND_FAMILY_MISMATCH',
      '2001:db8::2 is IPv6',
    ],
    [
      'backend port',
      { ...good, backends: [backends[0], { ...backends[1], port: 8080 }] },
      'BACKEND_PORT_MISMATCH',
      'port: 8080',
    ],
    ['backend mac', { ...good, backends: [backends[0], { ...backends[1], mac: 'zz' }] }, 'BACKEND_INVALID', '"zz"'],
    ['duplicate backend', { ...good, backends: [backends[0], backends[0]] }, 'BACKEND_INVALID', 'more than once'],
    ['onMemberDown', { ...good, onMemberDown: 'drop' }, 'VIP_INVALID', 'onMemberDown "drop"'],
    ['backend down', { ...good, backends: [backends[0], { ...backends[1], down: 'yes' }] }, 'BACKEND_INVALID', '"yes"'],
    [
      'slot out of range',
      { ...good, slots: Int32Array.from(good.slots).fill(2, 3, 4) },
      'SLOTS_INVALID',
      'slots[3]: 2',
    ],
    ['size not prime', { ...good, slots: new Int32Array(12) }, 'SLOTS_INVALID', 'not prime'],
    ['not an Int32Array', { ...good, slots: [0, 1] }, 'SLOTS_INVALID', 'Int32Array'],
    ['draining not a boolean', { ...good, draining: 'yes' }, 'VIP_INVALID', 'draining: "yes" is not true or false'],
    ['sourceRanges empty', { ...good, sourceRanges: [] }, 'VIP_INVALID', 'sourceRanges: 0 prefixes is not a list'],
    ['sourceRanges not a list', { ...good, sourceRanges: '10.0.0.0/8' }, 'VIP_INVALID', 'sourceRanges: "10.0.0.0/8"'],
    ['sourceRanges bad prefix', { ...good, sourceRanges: ['10.0.0.0/40'] }, 'VIP_INVALID', '[0]: "10.0.0.0/40" has a'],
    ['sourceRanges host bits', { ...good, sourceRanges: ['10.0.0.1/8'] }, 'VIP_INVALID', 'host bits'],
    [
      'sourceRanges not canonical',
      { ...good, sourceRanges: ['10.0.0.1'] },
      'VIP_INVALID',
      'not canonical (10.0.0.1/32)',
    ],
    ['sourceRanges family', { ...good, sourceRanges: ['2001:db8::/32'] }, 'VIP_INVALID', 'is IPv6 but the VIP is IPv4'],
    [
      'sourceRanges twice',
      { ...good, sourceRanges: ['10.0.0.0/8', '10.0.0.0/8'] },
      'VIP_INVALID',
      '[1]: "10.0.0.0/8" appears more',
    ],
  ])('%s - %s', (_name, table, code, text) => {
    const err = (() => {
      try {
        validateDesired([table as VipTable], { requireSamePort: true });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(DataPlaneError);
    expect((err as DataPlaneError).code).toBe(code);
    expect((err as DataPlaneError).message).toContain(text);
  });

  test('sourceRanges - parsed for the drivers (network bytes, length); absent: none', () => {
    const [v] = validateDesired([{ ...good, sourceRanges: ['198.18.0.0/15', '10.1.2.3/32'] }], {
      requireSamePort: true,
    });
    expect(v?.sources?.map((p) => [p.text, p.length, [...p.bytes]])).toEqual([
      ['198.18.0.0/15', 15, [198, 18, 0, 0]],
      ['10.1.2.3/32', 32, [10, 1, 2, 3]],
    ]);
    expect(validateDesired([good], { requireSamePort: true })[0]?.sources).toBeUndefined();
  });

  test('sourceRanges - more than MAX_TOTAL_SOURCE_RANGES over all VIPs is refused', () => {
    const ranges = Array.from({ length: 1_024 }, (_, i) => `10.0.${i >> 8}.${i & 255}/32`);
    const many = Array.from({ length: 17 }, (_, i) => ({
      ...good,
      vip: { ...good.vip, port: 100 + i },
      sourceRanges: ranges,
    }));
    expect(() => validateDesired(many, { requireSamePort: false })).toThrow(/more than 16384 sourceRanges prefixes/);
    expect(validateDesired(many.slice(0, 16), { requireSamePort: false })).toHaveLength(16);
  });

  test('duplicate VIP - same address (any spelling), port and protocol', () => {
    const v6 = {
      ...good,
      vip: { ...good.vip, address: '2001:db8::1' },
      backends: [{ name: 'x', address: '2001:db8::9', port: 80 }],
    };
    const v6b = { ...v6, vip: { ...v6.vip, address: '2001:0db8:0:0::1' } };
    expect(() =>
      validateDesired(
        [
          { ...v6, slots: buildTable(v6.backends, 13) },
          { ...v6b, slots: buildTable(v6.backends, 13) },
        ],
        { requireSamePort: true },
      ),
    ).toThrow(/already given/);
  });

  test('proxy - backend ports may differ from the VIP port', () => {
    const t = { ...good, backends: backends.map((b) => ({ ...b, port: 8080 })) };
    expect(validateDesired([t], { requireSamePort: false })[0]?.key).toBe('v_c6120201_tcp_80');
  });
});

describe('validateDesired - forwarding', () => {
  test('defaults to l2 with the GUE port 6080', () => {
    const [v] = validateDesired([good], { requireSamePort: true });
    expect([v?.forwarding, v?.guePort]).toEqual(['l2', 6080]);
  });

  test('a driver that only forwards at L2 refuses encapsulation, naming the VIP and the value', () => {
    const gue: VipTable = { ...good, forwarding: 'gue' };
    const err = (() => {
      try {
        validateDesired([gue], { requireSamePort: true, forwarding: ['l2'], driver: 'nftables' });
      } catch (e) {
        return e as DataPlaneError;
      }
      throw new Error('expected a refusal');
    })();
    expect(err.code).toBe('FORWARDING_UNSUPPORTED');
    expect(err.message).toContain('forwarding "gue" is not supported by the nftables data plane');
    expect(validateDesired([gue], { requireSamePort: true })[0]?.forwarding).toBe('gue');
  });

  test('a driver without nat (bpf) refuses it, naming itself and the data plane that has it', () => {
    const nat: VipTable = { ...good, forwarding: 'nat', backends: backends.map((b) => ({ ...b, port: 8080 })) };
    expect(() =>
      validateDesired([nat], { requireSamePort: true, forwarding: ['l2', 'ipip', 'gre', 'gue'], driver: 'bpf' }),
    ).toThrow(
      'forwarding "nat" is not supported by the bpf data plane (supported: l2 | ipip | gre | gue; nat needs connection tracking: use the nftables data plane)',
    );
  });

  test.each([
    [
      { ...good, forwarding: 'vxlan' as NonNullable<VipTable['forwarding']> },
      'forwarding "vxlan" is not one of l2 | ipip | gre | gue',
    ],
    [{ ...good, forwarding: 'gue' as const, guePort: 0 }, 'guePort 0 is not a port'],
  ])('bad forwarding fields: %#', (t, message) => {
    expect(() => validateDesired([t], { requireSamePort: true })).toThrow(message);
  });
});
