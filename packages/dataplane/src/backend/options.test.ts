import { describe, expect, test } from 'vitest';
import { DataPlaneError } from '../errors.js';
import { desiredMaps } from './bpf.js';
import { DEFAULT_GUE_PORT, parseBackendSetupOptions } from './options.js';
import { planSysctls, sysctlKeys } from './sysctl-plan.js';

const good = { vips: ['198.51.100.7', '2001:db8::7'], nodes: ['198.18.0.2'], forwarding: ['gue'] };

function problems(input: Parameters<typeof parseBackendSetupOptions>[0]): string[] {
  try {
    parseBackendSetupOptions(input);
  } catch (err) {
    expect(err).toBeInstanceOf(DataPlaneError);
    expect((err as DataPlaneError).code).toBe('OPTIONS_INVALID');
    return (err as Error).message.split('\n');
  }
  return [];
}

describe('backend options', () => {
  test('backend options - defaults: gue port 6080, modes sorted and deduplicated, comma lists accepted', () => {
    const o = parseBackendSetupOptions({ ...good, forwarding: 'gre,gue,gre' });
    expect(o.guePort).toBe(DEFAULT_GUE_PORT);
    expect(o.forwarding).toEqual(['gre', 'gue']);
    expect(o.vips.map((v) => v.family)).toEqual([4, 6]);
    expect(o.interface).toBeUndefined();
  });

  test.each([
    [{ ...good, vips: ['198.51.100.300'] }, '--vip "198.51.100.300": not an IPv4 or IPv6 address'],
    [{ ...good, vips: ['198.51.100.0/24'] }, '--vip "198.51.100.0/24": not an IPv4 or IPv6 address'],
    [{ ...good, vips: [] }, '--vip: at least one address is required'],
    [{ ...good, vips: ['2001:db8::7', '2001:DB8:0::7'] }, '--vip "2001:DB8:0::7": given twice'],
    [{ ...good, vips: ['::'] }, '--vip "::": the unspecified address'],
    [{ vips: good.vips, forwarding: good.forwarding }, '--nodes: at least one address is required'],
    [{ ...good, nodes: ['node-1'] }, '--nodes "node-1": not an IPv4 or IPv6 address'],
    [{ ...good, forwarding: ['vxlan'] }, '--forwarding "vxlan": not one of gue | ipip | gre'],
    [{ ...good, forwarding: [] }, '--forwarding: required, one or more of gue | ipip | gre'],
    [{ ...good, guePort: '0' }, '--gue-port "0": not a port (1-65535)'],
    [{ ...good, guePort: '6080x' }, '--gue-port "6080x": not a port (1-65535)'],
    [{ ...good, forwarding: ['ipip'], guePort: 6081 }, '--gue-port 6081: only meaningful with --forwarding gue'],
    [{ ...good, interface: 'eth0; rm -rf /' }, '--interface "eth0; rm -rf /": not an interface name'],
    [{ ...good, vips: ['::ffff:198.51.100.7'] }, '--vip "::ffff:198.51.100.7": an IPv4-mapped address'],
    [{ ...good, vips: ['224.0.0.1'] }, '--vip "224.0.0.1": a multicast address'],
    [{ ...good, vips: ['255.255.255.255'] }, '--vip "255.255.255.255": the broadcast address'],
    [{ ...good, vips: ['169.254.1.1'] }, '--vip "169.254.1.1": a link-local address'],
    [{ ...good, vips: ['fe80::1'] }, '--vip "fe80::1": a link-local address'],
    [{ ...good, vips: ['240.0.0.1'] }, '--vip "240.0.0.1": a reserved address'],
    [{ ...good, vips: ['127.0.0.1'] }, '--vip "127.0.0.1": a loopback address'],
    [{ ...good, vips: ['0.0.0.0'] }, '--vip "0.0.0.0": an unspecified'],
    [{ ...good, nodes: ['::ffff:198.18.0.2'] }, '--nodes "::ffff:198.18.0.2": an IPv4-mapped address'],
    [{ ...good, nodes: ['ff02::1'] }, '--nodes "ff02::1": a multicast address'],
    [{ ...good, nodes: ['255.255.255.255'] }, '--nodes "255.255.255.255": the broadcast address'],
    [{ ...good, nodes: ['0.0.0.0'] }, '--nodes "0.0.0.0": an unspecified'],
    [{ ...good, peers: ['::ffff:198.18.5.11'] }, '--peers "::ffff:198.18.5.11": an IPv4-mapped address'],
    [{ ...good, peers: ['239.1.1.1'] }, '--peers "239.1.1.1": a multicast address'],
  ])('backend options - %j is refused: %s', (input, message) => {
    expect(problems(input).join('\n')).toContain(message);
  });

  test('backend options - every problem is listed at once', () => {
    expect(problems({ vips: ['x'], nodes: ['y'], forwarding: ['z'] })).toHaveLength(3);
  });
});

describe('backend maps', () => {
  test('backend maps - config holds the mode bits (gue 1, ipip 2, gre 4) and the port in network order', () => {
    const maps = desiredMaps(parseBackendSetupOptions({ ...good, forwarding: ['gue', 'gre'], guePort: 6081 }));
    expect(maps.get('l4fb_config')?.get('00000000')).toBe('0500000017c10000');
    expect([...(maps.get('l4fb_vips4')?.keys() ?? [])]).toEqual(['c6336407']);
    expect([...(maps.get('l4fb_vips6')?.keys() ?? [])]).toEqual(['20010db8000000000000000000000007']);
    expect([...(maps.get('l4fb_nodes4')?.keys() ?? [])]).toEqual(['c6120002']);
    expect(maps.get('l4fb_nodes6')?.size).toBe(0);
  });
});

describe('backend sysctls', () => {
  const keys = sysctlKeys('eth0.100');
  const plan = (all: [string, string, string], dev: string) =>
    planSysctls(
      keys,
      new Map([
        [keys.arpIgnore, all[0]],
        [keys.arpAnnounce, all[1]],
        [keys.rpFilterAll, all[2]],
        [keys.rpFilterInterface, dev],
      ]),
    );

  test('backend sysctls - a default host gets arp_ignore 1 and arp_announce 2; rp_filter off stays off', () => {
    expect(plan(['0', '0', '0'], '0')).toEqual([
      ['net/ipv4/conf/all/arp_ignore', '1'],
      ['net/ipv4/conf/all/arp_announce', '2'],
    ]);
  });

  test.each([
    [['0', '0', '1'], '0'],
    [['0', '0', '0'], '1'],
    [['0', '0', '1'], '1'],
  ] as [[string, string, string], string][])(
    'backend sysctls - strict rp_filter (all %j, dev %s) becomes loose on the interface',
    (all, dev) => {
      expect(plan(all, dev)).toContainEqual(['net/ipv4/conf/eth0.100/rp_filter', '2']);
    },
  );

  test('backend sysctls - stricter values already in place are kept: nothing to write', () => {
    expect(plan(['2', '2', '2'], '0')).toEqual([]);
    expect(plan(['8', '2', '0'], '2')).toEqual([]);
  });
});

describe('backend options - second chance', () => {
  test('--peers: optional; in the allow lists as 2 (peer), 3 when also a node; config flags say off with --no-second-chance', () => {
    const o = parseBackendSetupOptions({ ...good, peers: ['198.18.0.2', '198.18.5.11', '2001:db8::b'] });
    expect(o.secondChance).toBe(true);
    const maps = desiredMaps(o);
    expect([...(maps.get('l4fb_nodes4') ?? [])]).toEqual([
      ['c6120002', '03'],
      ['c612050b', '02'],
    ]);
    expect([...(maps.get('l4fb_nodes6') ?? [])]).toEqual([['20010db800000000000000000000000b', '02']]);
    expect(maps.get('l4fb_config')?.get('00000000')?.slice(12)).toBe('0000');
    const off = desiredMaps(parseBackendSetupOptions({ ...good, secondChance: false }));
    expect(off.get('l4fb_config')?.get('00000000')?.slice(12)).toBe('0100');
    expect(parseBackendSetupOptions(good).peers).toEqual([]);
  });

  test('--peers: bad and repeated addresses are refused naming the flag and the value', () => {
    expect(problems({ ...good, peers: ['peer-1'] })).toEqual(['--peers "peer-1": not an IPv4 or IPv6 address']);
    expect(problems({ ...good, peers: ['198.18.5.11', '198.18.5.11'] })).toEqual([
      '--peers "198.18.5.11": given twice',
    ]);
  });
});
