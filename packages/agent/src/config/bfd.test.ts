import { describe, expect, test } from 'vitest';
import { AgentError } from '../errors.js';
import { parseAgentConfig } from './parse.js';

const minimal = {
  node: { name: 'node1', interface: 'eth0', address: '198.18.0.11' },
  bgp: {
    asn: 65001,
    peers: [
      { address: '198.18.0.1', asn: 65000 },
      { address: '198.18.1.1', asn: 65000, localAddress: '198.18.1.11' },
    ],
  },
  etcd: { endpoints: ['http://127.0.0.1:2379'] },
};

function problemsOf(raw: unknown): string[] {
  try {
    parseAgentConfig(raw);
  } catch (err) {
    expect(err).toBeInstanceOf(AgentError);
    return (err as AgentError).problems.map((p) => `${p.path}: ${p.message}`);
  }
  throw new Error('expected the config to be refused');
}

describe('agent config - bfd', () => {
  test('absent: off, with the defaults filled in and the BGP peers as sessions', () => {
    expect(parseAgentConfig(minimal).bfd).toEqual({
      enabled: false,
      vtyDir: '/var/run/frr',
      peers: [
        { address: '198.18.0.1', localAddress: '198.18.0.11' },
        { address: '198.18.1.1', localAddress: '198.18.1.11' },
      ],
      receiveIntervalMs: 100,
      transmitIntervalMs: 100,
      detectMultiplier: 3,
      pollIntervalMs: 1_000,
      followDataPlane: true,
    });
  });

  test('explicit peers and timers', () => {
    const c = parseAgentConfig({
      ...minimal,
      bfd: {
        enabled: true,
        vtyDir: '/run/l4fleet/bfd',
        peers: ['198.18.0.1'],
        receiveIntervalMs: 300,
        transmitIntervalMs: 250,
        detectMultiplier: 5,
        followDataPlane: false,
      },
    });
    expect(c.bfd).toMatchObject({
      enabled: true,
      vtyDir: '/run/l4fleet/bfd',
      peers: [{ address: '198.18.0.1', localAddress: '198.18.0.11' }],
      receiveIntervalMs: 300,
      transmitIntervalMs: 250,
      detectMultiplier: 5,
      followDataPlane: false,
    });
  });

  test.each([
    [{ receiveIntervalMs: 5 }, 'bfd.receiveIntervalMs: 5 is not an interval in ms (10-60000)'],
    [{ transmitIntervalMs: '100' }, 'bfd.transmitIntervalMs: "100" is not an interval in ms (10-60000)'],
    [{ detectMultiplier: 1 }, 'bfd.detectMultiplier: 1 is not a multiplier (2-255)'],
    [{ enabled: 'yes' }, 'bfd.enabled: "yes" is not true or false'],
    [{ vtyDir: 'frr' }, 'bfd.vtyDir: "frr" is not an absolute directory path'],
    [{ peers: ['198.18.0.1', '198.18.0.1'] }, 'bfd.peers[1]: "198.18.0.1" duplicates bfd.peers[0]'],
    [{ peers: ['2001:db8::1'] }, 'bfd.peers[0]: "2001:db8::1" is IPv6 and node.address6 is not set'],
    [{ enabled: true, peers: [] }, 'bfd.peers: no peers: BFD is enabled but there is no session to keep'],
    [{ interval: 100 }, 'bfd.interval'],
    // bfdd needs the interface of a link-local peer, and the section has no field for it.
    [{ peers: ['fe80::1'] }, 'bfd.peers[0]: "fe80::1" is a link-local address (fe80::/10)'],
    // bfdd prints it dotted (::198.18.0.1): the controller never matched the session and re-added it every poll.
    [{ peers: ['::198.18.0.1'] }, 'bfd.peers[0]: "::198.18.0.1" is an IPv4-compatible address (::/96'],
    [{ peers: ['::ffff:198.18.0.1'] }, 'bfd.peers[0]: "::ffff:198.18.0.1" is an IPv4-mapped address'],
  ])('%j is refused naming the field and the value', (bfd, says) => {
    expect(problemsOf({ ...minimal, bfd }).join('\n')).toContain(says);
  });

  test('peers that are not addresses are named', () => {
    expect(problemsOf({ ...minimal, bfd: { peers: ['router'] } }).join('\n')).toMatch(/bfd\.peers\[0\]: "router"/);
  });

  test('an explicit peer whose BGP session has a localAddress of the other family is refused, naming both', () => {
    const problems = problemsOf({
      ...minimal,
      node: { ...minimal.node, address6: '2001:db8:1::11' },
      bgp: {
        ...minimal.bgp,
        peers: [...minimal.bgp.peers, { address: '2001:db8:1::1', asn: 65000, localAddress: '198.18.0.11' }],
      },
      bfd: { peers: ['198.18.0.1', '2001:db8:1::1'] },
    });
    expect(problems).toContain(
      'bfd.peers[1]: "2001:db8:1::1" is IPv6 but its local address "198.18.0.11" (bgp.peers[2].localAddress) is IPv4',
    );
  });
});
