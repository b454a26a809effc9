import { describe, expect, test } from 'vitest';
import { bfdTimers, frrBfddConfig } from './frr-bfd.js';
import { type FrrOptions, frrBgpdConfig } from './frr-config.js';

const base: FrrOptions = {
  asn: 65000,
  routerId: '198.18.2.1',
  hostname: 'router',
  neighbors: [{ address: '198.18.2.11', asn: 65001, password: 'l4fleet-lab' }],
  peerGroup: { name: 'NODES', asn: 65001, members: ['198.18.2.12', '2001:db8::12'], bfdProfile: 'nodes' },
};

describe('frr config - values that would break or inject config lines', () => {
  test('good values are written as given', () => {
    const text = frrBgpdConfig(base);
    expect(text).toContain(' neighbor 198.18.2.11 password l4fleet-lab\n');
    expect(text).toContain(' neighbor 2001:db8::12 peer-group NODES\n');
  });

  test.each<[string, Partial<FrrOptions>, string, string]>([
    [
      'a newline in a password',
      { neighbors: [{ address: '198.18.2.11', asn: 65001, password: 'x\n neighbor 198.18.9.9 remote-as 1' }] },
      'neighbors[0].password',
      '(value not shown): has whitespace or a control character',
    ],
    [
      'a space in a password',
      { neighbors: [{ address: '198.18.2.11', asn: 65001, password: 'two words' }] },
      'neighbors[0].password',
      '(value not shown): has whitespace or a control character',
    ],
    [
      'a neighbour that is not an address',
      { neighbors: [{ address: '198.18.2.11 remote-as 1', asn: 65001 }] },
      'neighbors[0].address',
      '"198.18.2.11 remote-as 1": not an IP address',
    ],
    [
      'a peer-group member that is not an address',
      { peerGroup: { name: 'NODES', asn: 65001, members: ['198.18.2.12', 'node2'] } },
      'peerGroup.members[1]',
      '"node2": not an IP address',
    ],
    [
      'a peer-group name with a newline',
      { peerGroup: { name: 'NODES\nrouter bgp 1', asn: 65001, members: [] } },
      'peerGroup.name',
      '"NODES\\nrouter bgp 1": has whitespace or a control character',
    ],
    [
      'a bfd profile with a space',
      { peerGroup: { name: 'NODES', asn: 65001, members: [], bfdProfile: 'a b' } },
      'peerGroup.bfdProfile',
      '"a b": has whitespace or a control character',
    ],
    [
      'a hostname with a newline',
      { hostname: 'r\nline vty' },
      'hostname',
      '"r\\nline vty": has whitespace or a control character',
    ],
    ['a router id that is not IPv4', { routerId: '2001:db8::1' }, 'routerId', '"2001:db8::1": not an IPv4 address'],
  ])('%s is refused with INVALID_CONFIG naming the field and the value', (_, change, field, why) => {
    expect(() => frrBgpdConfig({ ...base, ...change })).toThrow(
      expect.objectContaining({
        name: 'DaemonError',
        code: 'INVALID_CONFIG',
        message: `frr bgpd config ${field} ${why}`,
      }),
    );
  });

  test('a refused password is not repeated in the error (it ends up in logs and terminals)', () => {
    const secret = 'S3cret pw';
    const build = () =>
      frrBgpdConfig({
        ...base,
        neighbors: [],
        peerGroup: { name: 'NODES', asn: 65001, members: [], password: secret },
      });
    expect(build).toThrow(
      expect.objectContaining({
        code: 'INVALID_CONFIG',
        message: 'frr bgpd config peerGroup.password (value not shown): has whitespace or a control character',
      }),
    );
    expect(build).not.toThrow(expect.objectContaining({ message: expect.stringContaining('S3cret') }));
  });

  test.each<[string, Parameters<typeof frrBfddConfig>[0], string]>([
    ['hostname', { hostname: 'n\nx' }, 'hostname "n\\nx": has whitespace or a control character'],
    [
      'profile name',
      { profiles: [{ name: 'nodes\n peer 198.18.9.9', ...bfdTimers() }] },
      'profiles[0].name "nodes\\n peer 198.18.9.9": has whitespace or a control character',
    ],
    [
      'peer address',
      { peers: [{ address: '198.18.2.1\n!', localAddress: '198.18.2.11', ...bfdTimers() }] },
      'peers[0].address "198.18.2.1\\n!": not an IP address',
    ],
    [
      'peer local address',
      { peers: [{ address: '198.18.2.1', localAddress: 'eth0', ...bfdTimers() }] },
      'peers[0].localAddress "eth0": not an IP address',
    ],
  ])('bfdd: a bad %s is refused with INVALID_CONFIG', (_, opts, message) => {
    expect(() => frrBfddConfig(opts)).toThrow(
      expect.objectContaining({ code: 'INVALID_CONFIG', message: `frr bfdd config ${message}` }),
    );
  });
});
