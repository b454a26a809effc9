import { describe, expect, test } from 'vitest';
import { BgpError } from './errors.js';
import {
  canonicalAdvertisement,
  canonicalAdvertisements,
  canonicalGlobal,
  canonicalIp,
  canonicalPeer,
  canonicalPeers,
  formatCommunity,
  parseCommunity,
  parsePrefix,
  validateAsn,
  validateRouterId,
} from './validate.js';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(BgpError);
    return (err as BgpError).code;
  }
  return undefined;
}

describe('validate - prefixes', () => {
  test.each([
    ['198.51.100.10/32', '198.51.100.10/32', 4],
    ['198.51.100.10', '198.51.100.10/32', 4],
    ['2001:DB8:0:0::10/128', '2001:db8::10/128', 6],
    ['2001:db8::10', '2001:db8::10/128', 6],
    ['::ffff:1:0:0/128', '::ffff:1:0:0/128', 6],
    ['::2/128', '::2/128', 6],
  ])('%s is the host route %s', (input, text, family) => {
    expect(parsePrefix(input)).toMatchObject({ text, family });
  });

  test.each([
    ['198.51.100.0/24', /a VIP is a host route, \/32/],
    ['2001:db8::/64', /\/128 for IPv6/],
    ['198.51.100.300/32', /not an IPv4 or IPv6 address/],
    ['fe80::1%eth0/128', /not an IPv4 or IPv6 address/],
    ['198.51.100.1/032', /host route/],
    // gobgpd prints an IPv4-mapped prefix as the IPv4 one: reconcile would re-announce it at every resync.
    ['::ffff:198.51.100.9/128', /"::ffff:198.51.100.9\/128": an IPv4-mapped address/],
    ['::ffff:c633:6409/128', /IPv4-mapped/],
    ['::198.51.100.9/128', /"::198.51.100.9\/128": an IPv4-compatible address/],
  ])('%s is refused: %s', (input, message) => {
    expect(() => parsePrefix(input)).toThrow(message);
    expect(codeOf(() => parsePrefix(input))).toBe('PREFIX_INVALID');
  });

  test('the message names the field and the value', () => {
    expect(() => parsePrefix('198.18.0.0/15', 'advertisements[3].prefix')).toThrow(
      'advertisements[3].prefix "198.18.0.0/15": a VIP is a host route, /32 for IPv4',
    );
  });
});

describe('validate - addresses, ASN, router id, communities', () => {
  test('canonicalIp prints IPv6 as RFC 5952 (like Go), IPv4 unchanged', () => {
    expect(canonicalIp('2001:0DB8:0000:0000:0000:0000:0000:0001')).toBe('2001:db8::1');
    expect(canonicalIp('2001:db8:0:1:0:0:0:1')).toBe('2001:db8:0:1::1');
    expect(canonicalIp('198.18.2.1')).toBe('198.18.2.1');
  });

  test.each([0, -1, 1.5, 4_294_967_296, '65000', Number.NaN])('ASN %s is refused', (asn) => {
    expect(codeOf(() => validateAsn(asn))).toBe('ASN_INVALID');
  });
  test.each([1, 65000, 4_200_000_000, 4_294_967_295])('ASN %s is accepted', (asn) => {
    expect(validateAsn(asn)).toBe(asn);
  });

  test.each(['0.0.0.0', '2001:db8::1', '10.0.0', 'router-1'])('router id %s is refused', (id) => {
    expect(codeOf(() => validateRouterId(id))).toBe('ROUTER_ID_INVALID');
  });

  test.each([
    ['65535:0', 0xffff0000],
    ['0:0', 0],
    ['65001:100', 65001 * 65536 + 100],
  ])('community %s is %d and back', (text, value) => {
    expect(parseCommunity(text)).toBe(value);
    expect(formatCommunity(value)).toBe(text);
  });
  test.each(['65536:0', '1:65536', 'no-export', '1:2:3', ''])('community %s is refused', (text) => {
    expect(codeOf(() => parseCommunity(text))).toBe('COMMUNITY_INVALID');
  });
});

describe('validate - advertisements', () => {
  test('canonical form: sorted, deduplicated communities and canonical next hop', () => {
    expect(
      canonicalAdvertisement({
        prefix: '2001:DB8::10/128',
        nextHop: '2001:DB8::0:1',
        communities: ['65535:0', '65001:7', '65535:0'],
        med: 0,
      }),
    ).toEqual({
      prefix: '2001:db8::10/128',
      family: 6,
      nextHop: '2001:db8::1',
      communities: ['65001:7', '65535:0'],
      med: 0,
      localPref: undefined,
    });
  });

  test('next hop of the wrong family names both values', () => {
    expect(() => canonicalAdvertisement({ prefix: '198.51.100.10/32', nextHop: '2001:db8::1' })).toThrow(
      'advertisement.nextHop "2001:db8::1" is IPv6 but prefix "198.51.100.10/32" is IPv4',
    );
    expect(codeOf(() => canonicalAdvertisement({ prefix: '2001:db8::1/128', nextHop: '198.18.2.1' }))).toBe(
      'NEXT_HOP_FAMILY_MISMATCH',
    );
  });

  // The router forwards VIP traffic to the next hop: one it cannot forward to would blackhole the VIP. RFC 2545 §3
  // wants a global IPv6 next hop, so a link-local one alone is refused too.
  test.each([
    ['198.51.100.10/32', '224.0.0.5', 'a multicast address (224.0.0.0/4)'],
    ['198.51.100.10/32', '0.0.0.0', 'an unspecified ("this network", RFC 1122) address'],
    ['198.51.100.10/32', '127.0.0.1', 'a loopback address (127.0.0.0/8)'],
    ['198.51.100.10/32', '255.255.255.255', 'the broadcast address'],
    ['198.51.100.10/32', '169.254.0.11', 'a link-local address (169.254.0.0/16, not routed)'],
    ['2001:db8::10/128', 'ff02::1', 'a multicast address (ff00::/8)'],
    ['2001:db8::10/128', '::', 'the unspecified address (::)'],
    ['2001:db8::10/128', '::1', 'the loopback address (::1)'],
    ['2001:db8::10/128', 'FE80::11', 'a link-local address (fe80::/10, not routed)'],
  ])('%s with next hop %s is refused with NEXT_HOP_INVALID: %s', (prefix, nextHop, why) => {
    expect(codeOf(() => canonicalAdvertisement({ prefix, nextHop }))).toBe('NEXT_HOP_INVALID');
    expect(() => canonicalAdvertisements([{ prefix, nextHop }])).toThrow(
      `advertisements[0].nextHop "${nextHop}" is ${why}: not a next hop a router can forward to`,
    );
  });

  test.each([
    [{ prefix: '198.51.100.10/32', nextHop: 'gw' }, 'NEXT_HOP_INVALID'],
    [{ prefix: '198.51.100.10/32', nextHop: '198.18.2.1', med: -1 }, 'MED_INVALID'],
    [{ prefix: '198.51.100.10/32', nextHop: '198.18.2.1', localPref: 2 ** 32 }, 'LOCAL_PREF_INVALID'],
    [{ prefix: '198.51.100.10/32', nextHop: '198.18.2.1', communities: ['x'] }, 'COMMUNITY_INVALID'],
  ])('%o is refused with %s', (adv, code) => {
    expect(codeOf(() => canonicalAdvertisement(adv))).toBe(code);
  });

  test('one advertisement per prefix, in any spelling', () => {
    expect(() =>
      canonicalAdvertisements([
        { prefix: '2001:db8::10/128', nextHop: '2001:db8::1' },
        { prefix: '2001:DB8:0::10', nextHop: '2001:db8::2' },
      ]),
    ).toThrow('advertisements[1].prefix "2001:DB8:0::10" is announced twice');
  });
});

describe('validate - peers and global', () => {
  test('defaults: 3 s hold, 1 s keepalive, port 179', () => {
    expect(canonicalPeer({ address: '198.18.2.1', asn: 65000 })).toEqual({
      address: '198.18.2.1',
      asn: 65000,
      password: '',
      holdTimeS: 3,
      keepaliveS: 1,
      connectRetryS: 5,
      port: 179,
      localAddress: '',
      passive: false,
      ebgpMultihopTtl: 0,
      description: '',
    });
  });

  test.each([
    [{ holdTimeS: 2 }, 'TIMER_INVALID', /RFC 4271/],
    [{ holdTimeS: 3, keepaliveS: 3 }, 'TIMER_INVALID', /below holdTimeS 3/],
    [{ port: 0 }, 'PORT_INVALID', /peer.port 0/],
    [{ password: 'x'.repeat(81) }, 'PASSWORD_INVALID', /peer.password is 81 bytes .*at most 80 bytes/],
    // 80 characters, 160 bytes: Linux TCP_MD5SIG_MAXKEYLEN counts bytes.
    [{ password: 'é'.repeat(80) }, 'PASSWORD_INVALID', /peer.password is 160 bytes .*at most 80 bytes/],
    [{ address: '198.18.2' }, 'PEER_ADDRESS_INVALID', /"198.18.2"/],
    [{ asn: 0 }, 'ASN_INVALID', /peer.asn 0/],
  ])('%o is refused with %s', (patch, code, message) => {
    const peer = { address: '198.18.2.1', asn: 65000, ...patch };
    expect(codeOf(() => canonicalPeer(peer))).toBe(code);
    expect(() => canonicalPeer(peer)).toThrow(message);
  });

  // gobgpd's API reads a timer of 0 as unset (hold 90 s, keepalive hold/3): ListPeer would never match what was
  // asked for and the peer would be re-created at every resync, so the session never came up.
  test.each([
    [{ holdTimeS: 0, keepaliveS: 0 }, /peer.holdTimeS 0 .*gobgpd/],
    [{ keepaliveS: 0 }, /peer.keepaliveS 0 .*gobgpd/],
  ])('timer %o is refused (gobgpd reads 0 as unset)', (patch, message) => {
    const peer = { address: '198.18.2.1', asn: 65000, ...patch };
    expect(codeOf(() => canonicalPeer(peer))).toBe('TIMER_INVALID');
    expect(() => canonicalPeer(peer)).toThrow(message);
  });

  test('each peer address once', () => {
    expect(() =>
      canonicalPeers([
        { address: '2001:db8::1', asn: 1 },
        { address: '2001:DB8::0:1', asn: 2 },
      ]),
    ).toThrow(/peers\[1\].address "2001:DB8::0:1" is configured twice/);
  });

  test('global: listen port -1 means no listener; 0 is refused', () => {
    expect(canonicalGlobal({ asn: 65001, routerId: '198.18.0.1', listenPort: -1 }).listenPort).toBe(-1);
    expect(canonicalGlobal({ asn: 65001, routerId: '198.18.0.1' }).listenPort).toBe(179);
    expect(codeOf(() => canonicalGlobal({ asn: 65001, routerId: '198.18.0.1', listenPort: 0 }))).toBe('PORT_INVALID');
  });
});
