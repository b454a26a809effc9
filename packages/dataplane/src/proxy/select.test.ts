import { buildTable, slotOf } from '@l4fleet/maglev';
import { describe, expect, test } from 'vitest';
import type { VipTable } from '../types.js';
import { BackendSelector, type ProxySelection } from './select.js';

const backends = [
  { name: 'a', address: '2001:db8::a', port: 80 },
  { name: 'b', address: '2001:db8::b', port: 80 },
  { name: 'c', address: '2001:db8::c', port: 80 },
];
const six: VipTable = {
  vip: { address: '2001:db8::10', port: 80, protocol: 'tcp' },
  hash: '5-tuple',
  seed: 7,
  backends,
  slots: buildTable(backends, 251),
  forwarding: 'nat',
};
const four: VipTable = {
  ...six,
  vip: { address: '198.51.100.10', port: 80, protocol: 'tcp' },
  backends: backends.map((b, i) => ({ ...b, address: `198.18.0.${i + 1}` })),
};

describe('proxy backend selection', () => {
  test('proxy selection - a link-local client with a zone id gets the backend of its address without the zone', () => {
    const s = new BackendSelector(six, 'maglev');
    for (let sport = 1000; sport < 1020; sport++) {
      const slot = slotOf(
        { src: 'fe80::1', sport, dst: six.vip.address, dport: 80, protocol: 'tcp' },
        251,
        six.seed,
        '5-tuple',
      );
      expect(s.pick({ src: 'fe80::1%eth0', sport })).toBe(six.backends[six.slots[slot] as number]);
    }
  });

  test('proxy selection - an IPv4 client reported as ::ffff:a.b.c.d hashes as a.b.c.d on an IPv4 VIP', () => {
    const s = new BackendSelector(four, 'maglev');
    for (let sport = 1000; sport < 1020; sport++) {
      expect(s.pick({ src: '::ffff:198.18.5.5', sport })).toBe(s.pick({ src: '198.18.5.5', sport }));
    }
  });

  test.each([
    ['maglev', 'IPv4', '2001:db8::5'],
    ['maglev', 'IPv4', 'fe80::1%eth0'],
    ['maglev', 'IPv6', '198.18.5.5'],
    ['maglev', 'IPv6', '::ffff:198.18.5.5'],
    ['maglev', 'IPv6', 'not an address'],
    ['round-robin', 'IPv6', '::ffff:198.18.5.5'],
    ['least-connections', 'IPv4', '2001:db8::5'],
  ] as const)(
    'proxy selection - %s: a client of the other family than the VIP gets no backend, not an exception (%s VIP, client %s)',
    (mode, family, src) => {
      const s = new BackendSelector(family === 'IPv4' ? four : six, mode as ProxySelection);
      expect(s.pick({ src, sport: 1234 })).toBeUndefined();
    },
  );
});
