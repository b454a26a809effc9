import { describe, expect, test } from 'vitest';
import { bfdPeerCommands, bfdPeerRemoveCommands, bfdTimers, frrBfddConfig, parseBfdPeers } from './frr-bfd.js';
import { frrBgpdConfig } from './frr-config.js';

describe('frr bfd - config text', () => {
  test('a node peer carries its local address and timers, and no interface (bfdd runs without zebra)', () => {
    const text = frrBfddConfig({
      peers: [{ address: '198.18.2.1', localAddress: '198.18.2.11', ...bfdTimers(100, 3) }],
    });
    expect(text).toContain(' peer 198.18.2.1 local-address 198.18.2.11\n');
    expect(text).toContain('  receive-interval 100\n  transmit-interval 100\n  detect-multiplier 3\n');
    expect(text).not.toContain('interface');
  });

  test('a profile for bgpd, and the neighbours of a peer group use it', () => {
    const profiles = [{ name: 'nodes', ...bfdTimers(50, 4) }];
    expect(frrBfddConfig({ profiles })).toContain(' profile nodes\n  receive-interval 50\n');
    const bgpd = frrBgpdConfig({
      asn: 65000,
      routerId: '198.18.2.1',
      peerGroup: { name: 'NODES', asn: 65001, members: ['198.18.2.11'], bfdProfile: 'nodes' },
      bfdProfiles: profiles,
    });
    expect(bgpd).toContain(' neighbor NODES bfd\n neighbor NODES bfd profile nodes\n');
    expect(frrBgpdConfig({ asn: 65000, routerId: '198.18.2.1' })).not.toContain('bfd');
  });
});

describe('frr bfd - vtysh commands for a peer', () => {
  const peer = { address: '198.18.2.1', localAddress: '198.18.2.11', ...bfdTimers(100, 3) };
  test.each([
    [undefined, []],
    [true, ['shutdown']],
    [false, ['no shutdown']],
  ])('shutdown %s: the bfdd.conf lines in config mode, then %j', (shutdown, tail) => {
    expect(bfdPeerCommands(peer, shutdown)).toEqual([
      'configure terminal',
      'bfd',
      'peer 198.18.2.1 local-address 198.18.2.11',
      'receive-interval 100',
      'transmit-interval 100',
      'detect-multiplier 3',
      ...tail,
    ]);
  });

  // bfdd refuses every `no peer` once a `peer` line with another local address was recorded over the session; the
  // session's own line first puts its config back in step (FRR 8.4.4, measured).
  test("removal: the session's own peer line first, then `no peer` from the bfd node", () => {
    expect(bfdPeerRemoveCommands(peer)).toEqual([
      'configure terminal',
      'bfd',
      'peer 198.18.2.1 local-address 198.18.2.11',
      'exit',
      'no peer 198.18.2.1 local-address 198.18.2.11',
    ]);
  });
});

describe('frr bfd - show bfd peers json', () => {
  test('sessions with their state; entries without a peer are skipped', () => {
    const json = JSON.stringify([
      { peer: '198.18.2.11', local: '198.18.2.1', status: 'up', uptime: 12 },
      { peer: '198.18.2.12', status: 'down', downtime: 3 },
      { local: '198.18.2.1' },
    ]);
    expect(parseBfdPeers(json)).toEqual([
      { peer: '198.18.2.11', local: '198.18.2.1', status: 'up', sinceS: 12 },
      { peer: '198.18.2.12', local: undefined, status: 'down', sinceS: 3 },
    ]);
    expect(parseBfdPeers('')).toEqual([]);
    expect(parseBfdPeers('{}')).toEqual([]);
  });
});
