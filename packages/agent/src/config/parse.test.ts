import { execFileSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { canonicalAddress, LISTEN_ADDRESS_FORM } from '@l4fleet/config';
import { describe, expect, test } from 'vitest';
import { AgentError } from '../errors.js';
import { loadAgentConfig, MAX_AGENT_CONFIG_BYTES, parseAgentConfigText } from './load.js';
import { applyOverrides } from './overrides.js';
import { parseAgentConfig } from './parse.js';

const minimal = {
  node: { name: 'node1', interface: 'eth0', address: '198.18.0.11' },
  bgp: { asn: 65001, peers: [{ address: '198.18.0.1', asn: 65000, password: 's3cret' }] },
  etcd: { endpoints: ['http://127.0.0.1:2379'] },
};

function problemsOf(raw: unknown): string[] {
  try {
    parseAgentConfig(raw);
  } catch (err) {
    expect(err).toBeInstanceOf(AgentError);
    expect((err as AgentError).code).toBe('CONFIG_INVALID');
    return (err as AgentError).problems.map((p) => `${p.path}: ${p.message}`);
  }
  throw new Error('expected the config to be refused');
}

describe('agent config - parse', () => {
  test('a minimal file comes back fully defaulted', () => {
    const c = parseAgentConfig(minimal);
    expect(c.fleet).toBe('default');
    expect(c.bgp.routerId).toBe('198.18.0.11');
    expect(c.bgp.listenPort).toBe(-1);
    expect(c.bgp.gobgpdAddress).toBe('127.0.0.1:50051');
    expect(c.bgp.peers[0]).toMatchObject({
      holdTimeS: 3,
      keepaliveS: 1,
      port: 179,
      passive: false,
      password: 's3cret',
    });
    expect(c.etcd).toMatchObject({ prefix: '/l4fleet', dialTimeoutMs: 2_000, leaseTtlS: 10 });
    expect(c.nats).toMatchObject({ servers: [], subjectPrefix: 'l4fleet', maxPendingEvents: 1_000 });
    expect(c.metrics.listen).toBe('127.0.0.1:9469');
    expect(c.dataplane).toEqual({ driver: 'nftables', table: 'l4fleet', verifyIntervalS: 60 });
    const tuned = parseAgentConfig({
      ...minimal,
      dataplane: { flowTimeoutTcpS: 600, flowTimeoutUdpS: 10, flowTableSize: 262_144, deltaWriter: 'nft' },
    });
    expect(tuned.dataplane).toEqual({
      driver: 'nftables',
      table: 'l4fleet',
      flowTimeoutTcpS: 600,
      flowTimeoutUdpS: 10,
      flowTableSize: 262_144,
      deltaWriter: 'nft',
      verifyIntervalS: 60,
      // Still passed to the driver, but without effect since profiles (dataplane.test.ts).
      warnings: [
        expect.stringContaining('dataplane.flowTimeoutTcpS: 600'),
        expect.stringContaining('flowTimeoutUdpS: 10'),
      ],
    });
    expect(c.drain.forwardAfterWithdrawMs).toBe(3_000);
    expect(c.state).toEqual({ enabled: true, dir: '/var/lib/l4fleet', maxBytes: 64 * 1024 * 1024, maxAgeS: 604_800 });
    expect(c.logLevel).toBe('info');
  });

  test('etcd.leaseTtlS must outlive a renewal on a hung member when there are several endpoints', () => {
    const three = ['http://127.0.0.1:2379', 'http://127.0.0.1:2479', 'http://127.0.0.1:2579'];
    expect(problemsOf({ ...minimal, etcd: { endpoints: three, leaseTtlS: 3 } })).toEqual([
      'etcd.leaseTtlS: 3 s is too short for etcd.dialTimeoutMs 2000 ms: with a member hung, renewals can be 3200 ms apart (TTL/3 + dialTimeoutMs + 200 ms), and the node would lose its lease; raise the TTL or lower the timeout',
    ]);
    expect(
      parseAgentConfig({ ...minimal, etcd: { endpoints: three, leaseTtlS: 3, dialTimeoutMs: 1_000 } }).etcd,
    ).toMatchObject({
      leaseTtlS: 3,
      dialTimeoutMs: 1_000,
    });
    // One endpoint: nowhere to fail over to, nothing to check.
    expect(parseAgentConfig({ ...minimal, etcd: { ...minimal.etcd, leaseTtlS: 2 } }).etcd.leaseTtlS).toBe(2);
  });

  // etcd3 takes a URL apart by itself: these passed new URL() and then dialled 443, failed DNS on the path, ignored
  // the user, or threw in the client's constructor (a mix of secure and insecure hosts).
  test.each([
    ['http://127.0.0.1'],
    ['http://127.0.0.1:2379/v3/'],
    ['http://user@127.0.0.1:2379', 'http://***@127.0.0.1:2379'],
    ['http://127.0.0.1:2379?x=1'],
  ])('etcd.endpoints: %s is refused, named with its index (userinfo masked)', (url, shown = url) => {
    expect(problemsOf({ ...minimal, etcd: { endpoints: ['http://127.0.0.1:2379', url] } })).toEqual([
      `etcd.endpoints[1]: ${JSON.stringify(shown)} is not http(s)://HOST:PORT (PORT 1-65535; no user, path or query)`,
    ]);
  });

  test('etcd.endpoints: http:// mixed with https:// is refused', () => {
    expect(problemsOf({ ...minimal, etcd: { endpoints: ['https://e1:2379', 'http://e2:2379'] } })).toEqual([
      'etcd.endpoints[1]: "http://e2:2379" is http:// but "https://e1:2379" is https://: all endpoints use one scheme (the etcd client dials them all alike)',
    ]);
    expect(
      parseAgentConfig({ ...minimal, etcd: { endpoints: 'https://e1:2379,https://[2001:db8::1]:2379' } }).etcd,
    ).toMatchObject({ endpoints: ['https://e1:2379', 'https://[2001:db8::1]:2379'] });
  });

  test('state: every field checked with its path', () => {
    expect(problemsOf({ ...minimal, state: { enabled: 'yes', dir: '', maxBytes: 10, maxAgeS: -1, x: 1 } })).toEqual([
      'state.x: is not a known field (known: enabled, dir, maxBytes, maxAgeS)',
      'state.enabled: "yes" is not true or false',
      'state.dir: "" is not a directory path',
      'state.maxBytes: 10 is not a size in bytes (1024-2147483648)',
      'state.maxAgeS: -1 is not an age in s (0-315360000)',
    ]);
    expect(parseAgentConfig({ ...minimal, state: { dir: '/srv/l4', maxAgeS: 0 } }).state).toMatchObject({
      enabled: true,
      dir: '/srv/l4',
      maxAgeS: 0,
    });
  });

  test('every problem is reported at once with its path and value', () => {
    const problems = problemsOf({
      fleet: 'a.b',
      node: { name: '-bad', interface: 'eth0', address: '2001:db8::1', extra: 1 },
      bgp: {
        asn: 0,
        peers: [
          { address: '198.18.0.1', asn: 65000, holdTimeS: 2 },
          { address: '198.18.0.1', asn: 65000, keepaliveS: 5 },
          { address: '198.18.0.2', asn: 65000, holdTimeS: 0 },
          { address: '198.18.0.3', asn: 65000, keepaliveS: 0 },
        ],
        communities: ['65001:100', '70000:1'],
      },
      etcd: { endpoints: ['ftp://x'] },
      nats: { servers: 'nats://127.0.0.1:4222', user: 'u' },
      metrics: { listen: 'localhost' },
      dataplane: { driver: 'ebpf', flowTimeoutTcpS: 0, flowTableSize: 1.5, deltaWriter: 'bpf' },
    });
    expect(problems).toEqual(
      expect.arrayContaining([
        'fleet: "a.b" is not a fleet name (A-Z a-z 0-9 _ -)',
        'node.extra: is not a known field (known: name, interface, address, address6)',
        'node.name: "-bad" is not a node name (1-63 of A-Z a-z 0-9 . _ -, starting alphanumeric)',
        'node.address: "2001:db8::1" is not an IPv4 address',
        'bgp.asn: 0 is not an ASN (1-4294967295)',
        'bgp.peers[0].holdTimeS: 2 is not 3-65535 (RFC 4271 §4.2)',
        'bgp.peers[1].keepaliveS: 5 is not below holdTimeS (3)',
        'bgp.peers[2].holdTimeS: 0 is not 3-65535 (gobgpd reads 0 as unset: hold time 90 s)',
        'bgp.peers[3].keepaliveS: 0 is not 1-21845 (gobgpd reads 0 as unset: a third of the hold time)',
        'bgp.peers[1].address: "198.18.0.1" duplicates bgp.peers[0]',
        'bgp.communities[1]: "70000:1" is not a community ASN:VALUE (each 0-65535)',
        'etcd.endpoints[0]: "ftp://x" is not http(s)://HOST:PORT (PORT 1-65535; no user, path or query)',
        'nats: user and password go together',
        `metrics.listen: "localhost" is not ${LISTEN_ADDRESS_FORM}`,
        'dataplane.driver: "ebpf" is not one of nftables | bpf | proxy | dry-run',
        'dataplane.flowTimeoutTcpS: 0 is not seconds (1-604800)',
        'dataplane.flowTableSize: 1.5 is not a number of entries (1-16777216)',
        'dataplane.deltaWriter: "bpf" is not one of auto | netlink | nft',
      ]),
    );
    expect(problems.length).toBe(18);
  });

  const LISTENER_CLASH = ": gobgpd's second listener on the port would fail (EADDRINUSE), and BGP setup with it";
  test.each([
    [{}, ['node: missing', 'bgp: missing', 'etcd: missing']],
    [{ ...minimal, bgp: { asn: 65001, peers: [] } }, ['bgp.peers: no peers: the node could never announce a VIP']],
    [
      { ...minimal, bgp: { ...minimal.bgp, peers: [{ address: '198.18.0.1', asn: 1, password: 'x'.repeat(81) }] } },
      ['bgp.peers[0].password: is 81 bytes; TCP MD5 keys are at most 80 bytes (Linux TCP_MD5SIG_MAXKEYLEN)'],
    ],
    // 80 characters but 160 bytes in UTF-8: the kernel refuses the key and the session never comes up.
    [
      { ...minimal, bgp: { ...minimal.bgp, peers: [{ address: '198.18.0.1', asn: 1, password: 'é'.repeat(80) }] } },
      ['bgp.peers[0].password: is 160 bytes; TCP MD5 keys are at most 80 bytes (Linux TCP_MD5SIG_MAXKEYLEN)'],
    ],
    // RFC 6286: the BGP identifier is non-zero; bgp's speaker refuses 0.0.0.0 for good (ROUTER_ID_INVALID), so the
    // agent's BGP setup would fail every 5 s and never announce.
    [
      { ...minimal, bgp: { ...minimal.bgp, routerId: '0.0.0.0' } },
      ['bgp.routerId: "0.0.0.0" is not a BGP identifier (RFC 6286: non-zero)'],
    ],
    // gobgpd's StartBgp binds one listener per address on listenPort: a second bind of the same address, or of one a
    // wildcard of its family already holds, fails (EADDRINUSE) and BGP setup with it, every 5 s.
    [
      { ...minimal, bgp: { ...minimal.bgp, listenPort: 179, listenAddresses: ['198.18.0.11', '198.18.0.11'] } },
      [`bgp.listenAddresses[1]: "198.18.0.11" duplicates bgp.listenAddresses[0]${LISTENER_CLASH}`],
    ],
    [
      { ...minimal, bgp: { ...minimal.bgp, listenPort: 179, listenAddresses: ['2001:db8::11', '2001:DB8:0::11'] } },
      [`bgp.listenAddresses[1]: "2001:db8::11" duplicates bgp.listenAddresses[0]${LISTENER_CLASH}`],
    ],
    [
      { ...minimal, bgp: { ...minimal.bgp, listenPort: 179, listenAddresses: ['198.18.0.11', '::', '0.0.0.0'] } },
      [
        `bgp.listenAddresses[2]: "0.0.0.0" overlaps bgp.listenAddresses[0] ("198.18.0.11"): "0.0.0.0" is every IPv4 address${LISTENER_CLASH}`,
      ],
    ],
    [
      { ...minimal, bgp: { ...minimal.bgp, listenPort: 179, listenAddresses: ['::', '2001:db8::11'] } },
      [
        `bgp.listenAddresses[1]: "2001:db8::11" overlaps bgp.listenAddresses[0] ("::"): "::" is every IPv6 address${LISTENER_CLASH}`,
      ],
    ],
    // gobgpd opens an IPv4-mapped address (::ffff:a.b.c.d) as an IPv4 listener (GoBGP newTCPListener: To4() != nil),
    // on a.b.c.d: it clashes with 0.0.0.0 and with a.b.c.d as an IPv4 address would.
    [
      { ...minimal, bgp: { ...minimal.bgp, listenPort: 179, listenAddresses: ['0.0.0.0', '::ffff:198.18.0.11'] } },
      [
        `bgp.listenAddresses[1]: "::ffff:c612:b" (IPv4-mapped 198.18.0.11) overlaps bgp.listenAddresses[0] ("0.0.0.0"): "0.0.0.0" is every IPv4 address${LISTENER_CLASH}`,
      ],
    ],
    [
      { ...minimal, bgp: { ...minimal.bgp, listenPort: 179, listenAddresses: ['198.18.0.11', '::ffff:198.18.0.11'] } },
      [
        `bgp.listenAddresses[1]: "::ffff:c612:b" (IPv4-mapped 198.18.0.11) duplicates bgp.listenAddresses[0]${LISTENER_CLASH}`,
      ],
    ],
    [
      { ...minimal, bgp: { ...minimal.bgp, listenPort: 179, listenAddresses: ['0.0.0.0', '::ffff:0.0.0.0'] } },
      [`bgp.listenAddresses[1]: "::ffff:0:0" (IPv4-mapped 0.0.0.0) duplicates bgp.listenAddresses[0]${LISTENER_CLASH}`],
    ],
    // gobgpd takes 0 as no port; bgp's speaker refuses it for good (1-65535, or -1 for no listener).
    [{ ...minimal, bgp: { ...minimal.bgp, listenPort: 0 } }, ['bgp.listenPort: 0 is not a port (1-65535) or -1']],
    [
      { ...minimal, etcd: { endpoints: ['https://e:2379'], tls: { cert: '/c.pem' } } },
      ['etcd.tls: cert and key go together (client certificate)'],
    ],
  ])('refused: %j', (raw, expected) => {
    expect(problemsOf(raw)).toEqual(expect.arrayContaining(expected));
  });

  test.each([
    [['0.0.0.0', '::']], // gobgpd's default: its IPv6 wildcard listener is IPv6-only
    [['198.18.0.11', '2001:db8::11']],
    [['198.18.0.11', '198.18.0.12', '::']],
    [['::', '::ffff:198.18.0.11']], // the mapped one is an IPv4 listener; '::' is IPv6-only
  ])('bgp.listenAddresses %j: one listener each, taken', (listenAddresses) => {
    const c = parseAgentConfig({ ...minimal, bgp: { ...minimal.bgp, listenPort: 179, listenAddresses } });
    expect(c.bgp.listenAddresses).toEqual(listenAddresses.map((a) => canonicalAddress(a).address));
  });

  // listenPort -1: gobgpd opens no listener, so nothing can clash.
  test.each([[['198.18.0.11', '198.18.0.11']], [['0.0.0.0', '198.18.0.11']]])(
    'bgp.listenAddresses %j with listenPort -1: no listener, no clash',
    (listenAddresses) => {
      const c = parseAgentConfig({ ...minimal, bgp: { ...minimal.bgp, listenPort: -1, listenAddresses } });
      expect(c.bgp.listenAddresses).toEqual(listenAddresses);
    },
  );

  // gobgpd dials the peer from localAddress: of the other family it cannot (and BFD took the same pair).
  const node6 = { ...minimal.node, address6: '2001:db8:1::11' };
  test.each([
    [
      { address: '2001:db8:1::1', asn: 65000, localAddress: '198.18.0.11' },
      'bgp.peers[0].localAddress: "198.18.0.11" is IPv4 but the peer 2001:db8:1::1 is IPv6',
    ],
    [
      { address: '198.18.0.1', asn: 65000, localAddress: '2001:db8:1::11' },
      'bgp.peers[0].localAddress: "2001:db8:1::11" is IPv6 but the peer 198.18.0.1 is IPv4',
    ],
  ])('a peer whose localAddress is of the other family is refused, naming both: %j', (peer, says) => {
    const problems = problemsOf({ ...minimal, node: node6, bgp: { ...minimal.bgp, peers: [peer] } });
    expect(problems).toContain(says);
    // Reported once, under bgp.peers: BFD's sessions default to the same pair.
    expect(problems.filter((m) => m.includes('other family') || m.includes(' but the peer '))).toHaveLength(1);
  });

  // A link-local peer needs its interface (fe80::1%eth0): connect(2) without a scope fails with EINVAL.
  test.each([
    ['address', { address: 'fe80::1', asn: 65000 }, '"fe80::1"'],
    ['address', { address: 'FE80::1:2', asn: 65000 }, '"FE80::1:2"'],
    ['localAddress', { address: '2001:db8:1::1', asn: 65000, localAddress: 'fe80::11' }, '"fe80::11"'],
  ])(
    'a link-local IPv6 peer %s is refused, naming the value and that no zone can be given: %j',
    (field, peer, shown) => {
      const problems = problemsOf({ ...minimal, node: node6, bgp: { ...minimal.bgp, peers: [peer] } });
      const said = problems.find((m) =>
        m.startsWith(`bgp.peers[0].${field}: ${shown} is a link-local address (fe80::/10)`),
      );
      expect(said).toContain('zone');
    },
  );

  // gobgpd's bind of a link-local listener without a scope fails with EINVAL (RFC 4007), every 5 s, past --check.
  test.each([[['fe80::11']], [['198.18.0.11', 'FEBF::1']]])(
    'a link-local bgp.listenAddresses entry is refused, as a link-local peer is: %j',
    (listenAddresses) => {
      const problems = problemsOf({ ...minimal, bgp: { ...minimal.bgp, listenPort: 179, listenAddresses } });
      const i = listenAddresses.length - 1;
      const said = problems.find((m) =>
        m.startsWith(`bgp.listenAddresses[${i}]: "${listenAddresses[i]}" is a link-local address (fe80::/10)`),
      );
      expect(said).toContain('zone');
    },
  );

  // bfdd prints an IPv4-compatible address dotted (::198.18.0.1) where the config has ::c612:1, so the BFD
  // controller never matched its session and re-added it every poll; an IPv4-mapped one is an IPv4 peer in disguise.
  // Refused with node.address6's words (@l4fleet/config unusableAddress).
  test.each([
    ['address', { address: '::198.18.0.1', asn: 65000 }, '"::198.18.0.1"', 'an IPv4-compatible address (::/96'],
    ['address', { address: '::ffff:198.18.0.1', asn: 65000 }, '"::ffff:198.18.0.1"', 'an IPv4-mapped address'],
    [
      'localAddress',
      { address: '2001:db8:1::1', asn: 65000, localAddress: '::198.18.0.11' },
      '"::198.18.0.11"',
      'an IPv4-compatible address (::/96',
    ],
    [
      'localAddress',
      { address: '2001:db8:1::1', asn: 65000, localAddress: '::ffff:c612:b' },
      '"::ffff:c612:b"',
      'an IPv4-mapped address',
    ],
  ])('an IPv4-compatible or -mapped peer %s is refused: %j', (field, peer, shown, why) => {
    const problems = problemsOf({ ...minimal, node: node6, bgp: { ...minimal.bgp, peers: [peer] } });
    expect(problems.some((m) => m.startsWith(`bgp.peers[0].${field}: ${shown} is ${why}`))).toBe(true);
  });

  test.each(['::2', '::ffff:0:1:2', '64:ff9b::c612:1'])('peer %s (not IPv4-compatible or -mapped) is taken', (a) => {
    const c = parseAgentConfig({
      ...minimal,
      node: node6,
      bgp: { ...minimal.bgp, peers: [{ address: a, asn: 65000 }] },
    });
    expect(c.bgp.peers[0]?.address).toBe(canonicalAddress(a).address);
  });

  // The router forwards VIP traffic to node.address / address6: one it cannot forward to blackholes every VIP.
  // preflight (--check, reload) also asks whether the host owns it; this is the part that needs no host.
  test.each([
    ['address', '224.0.0.5', 'a multicast address (224.0.0.0/4)'],
    ['address', '169.254.0.11', 'a link-local address (169.254.0.0/16, not routed)'],
    ['address', '0.0.0.0', 'an unspecified ("this network", RFC 1122) address'],
    ['address', '127.0.0.1', 'a loopback address (127.0.0.0/8)'],
    ['address', '255.255.255.255', 'the broadcast address'],
    ['address6', 'ff02::1', 'a multicast address (ff00::/8)'],
    ['address6', 'fe80::11', 'a link-local address (fe80::/10, not routed)'],
    ['address6', '::', 'the unspecified address (::)'],
    ['address6', '::1', 'the loopback address (::1)'],
  ])('node.%s %j is refused: no router forwards to it (%s)', (field, value, why) => {
    const problems = problemsOf({ ...minimal, node: { ...minimal.node, [field]: value } });
    expect(problems).toEqual([`node.${field}: "${value}" is ${why}: not a next hop a router can forward to`]);
  });

  test('GRACEFUL_SHUTDOWN (65535:0) in bgp.communities is refused: the drain adds it', () => {
    for (const c of ['65535:0', '65535:00000']) {
      const problems = problemsOf({ ...minimal, bgp: { ...minimal.bgp, communities: ['65001:100', c] } });
      expect(problems).toEqual([
        `bgp.communities[1]: "${c}" is GRACEFUL_SHUTDOWN (RFC 8326): routers would rank every route last while` +
          ' serving; the drain adds it by itself',
      ]);
    }
  });

  test('bgp.communities are stored without leading zeros; a repeat is refused, naming both', () => {
    const c = parseAgentConfig({ ...minimal, bgp: { ...minimal.bgp, communities: ['65001:0100', '00065:7'] } });
    expect(c.bgp.communities).toEqual(['65001:100', '65:7']);
    const problems = problemsOf({ ...minimal, bgp: { ...minimal.bgp, communities: ['65001:100', '65001:0100'] } });
    expect(problems).toEqual(['bgp.communities[1]: "65001:0100" duplicates bgp.communities[0] ("65001:100")']);
  });

  test('an IPv4 link-local peer (169.254.0.0/16) is taken: IPv4 addresses have no zone', () => {
    const c = parseAgentConfig({
      ...minimal,
      bgp: { ...minimal.bgp, peers: [{ address: '169.254.0.1', asn: 65000, localAddress: '169.254.0.2' }] },
    });
    expect(c.bgp.peers[0]).toMatchObject({ address: '169.254.0.1', localAddress: '169.254.0.2' });
  });

  // Linux IFNAMSIZ is 16 bytes with the NUL; `:` marks an alias (eth0:1), not an interface; `.` and `..` are
  // directories under /sys/class/net, so --check found them.
  test.each(['eth0:1', '.', '..', 'é'.repeat(15), 'eth 0', 'a/b', 'x'.repeat(16)])(
    'node.interface %j is refused',
    (name) => {
      const problems = problemsOf({ ...minimal, node: { ...minimal.node, interface: name } });
      expect(problems).toEqual([expect.stringMatching(/^node\.interface: /)]);
    },
  );

  test.each(['eth0', 'bond0.100', 'x'.repeat(15), 'veth-é'])('node.interface %j is taken', (name) => {
    expect(parseAgentConfig({ ...minimal, node: { ...minimal.node, interface: name } }).node.interface).toBe(name);
  });

  // The metrics listener binds a numeric address (or localhost): `*` or `[foo]` failed only at the bind. The rule is
  // @l4fleet/config parseListenAddress, as for `backend agent --listen` and the dashboard's --listen.
  test.each([
    '*:9469',
    '[foo]:9469',
    'metrics.example:9469',
    '127.0.0.1:65536',
    '[::1]:x',
    '198.18.0.11',
    '300.1.1.1:9469',
    '127.1:9469',
    '0:9469',
  ])('metrics.listen %j is refused', (listen) => {
    expect(problemsOf({ ...minimal, metrics: { listen } })).toEqual([
      `metrics.listen: ${JSON.stringify(listen)} is not ${LISTEN_ADDRESS_FORM}`,
    ]);
  });

  test.each([
    ['127.0.0.1:9469', '127.0.0.1:9469'],
    ['[::1]:9469', '[::1]:9469'],
    ['0.0.0.0:9469', '0.0.0.0:9469'],
    ['[::]:9469', '[::]:9469'],
    ['localhost:9469', 'localhost:9469'],
    ['127.0.0.1:0', '127.0.0.1:0'],
    ['[0:0:0:0:0:0:0:1]:9469', '[::1]:9469'],
    ['[2001:DB8::11]:9469', '[2001:db8::11]:9469'],
  ])('metrics.listen %j is taken, canonical', (listen, canonical) => {
    expect(parseAgentConfig({ ...minimal, metrics: { listen } }).metrics.listen).toBe(canonical);
  });

  // createGobgpSpeaker refused what the parse took (any HOST:PORT): --check passed and the start failed. The speaker's
  // own rule now, with loopback in any spelling and gobgpd's unix socket.
  test.each([
    '127.0.0.1:50051',
    '127.0.0.2:50051',
    '[::1]:50051',
    '[0:0:0:0:0:0:0:1]:50051',
    '[::ffff:127.0.0.1]:50051',
    'localhost:50051',
    'unix:/run/gobgpd.sock',
    'unix:///run/gobgpd.sock',
  ])('bgp.gobgpdAddress %j is taken', (gobgpdAddress) => {
    expect(parseAgentConfig({ ...minimal, bgp: { ...minimal.bgp, gobgpdAddress } }).bgp.gobgpdAddress).toBe(
      gobgpdAddress,
    );
  });

  test.each(['198.18.0.5:50051', '[2001:db8::5]:50051', 'gobgpd.example:50051'])(
    'bgp.gobgpdAddress %j (off the host) is refused, and no option is offered that agent.yaml does not have',
    (gobgpdAddress) => {
      const problems = problemsOf({ ...minimal, bgp: { ...minimal.bgp, gobgpdAddress } });
      expect(problems).toEqual([
        `bgp.gobgpdAddress: ${JSON.stringify(gobgpdAddress)} is not on this host (loopback: 127.0.0.0/8, ::1 or localhost; or unix:/PATH): gobgpd's API is unauthenticated, and whoever reaches it can announce any route`,
      ]);
      expect(problems[0]).not.toContain('allowRemoteApi');
    },
  );

  test.each(['127.0.0.1', '127.0.0.1:0', '300.1.1.1:50051', 'unix:run/gobgpd.sock', 50051])(
    'bgp.gobgpdAddress %j is refused, naming the value',
    (gobgpdAddress) => {
      expect(problemsOf({ ...minimal, bgp: { ...minimal.bgp, gobgpdAddress } })).toEqual([
        expect.stringMatching(
          new RegExp(`^bgp\\.gobgpdAddress: ${JSON.stringify(gobgpdAddress).replace(/[.]/g, '\\.')} is not `),
        ),
      ]);
    },
  );

  // A socket bound to the unspecified address is what no source address gives: the field would say nothing.
  test.each(['0.0.0.0', '::'])('health.sourceAddress %j is refused', (sourceAddress) => {
    expect(problemsOf({ ...minimal, health: { sourceAddress } })).toEqual([
      expect.stringMatching(/^health\.sourceAddress: ".*" is the unspecified address/),
    ]);
  });

  // An IPv4-mapped or -compatible source is no IPv6 source (--check then said it was on no interface): node.address6's
  // words name why and what to write instead.
  test.each([
    ['::ffff:198.18.0.11', 'an IPv4-mapped address (::ffff:0:0/96; write the IPv4 address)'],
    ['::ffff:0.0.0.0', 'an IPv4-mapped address (::ffff:0:0/96; write the IPv4 address)'],
    ['::198.18.0.11', 'an IPv4-compatible address (::/96, deprecated by RFC 4291 §2.5.5.1; write the IPv4 address)'],
  ])('health.sourceAddress %j is refused as node.address6 refuses it', (sourceAddress, why) => {
    expect(problemsOf({ ...minimal, health: { sourceAddress } })).toEqual([
      `health.sourceAddress: ${JSON.stringify(sourceAddress)} is ${why}`,
    ]);
  });

  test.each(['198.18.0.11', '2001:db8::11', '::2'])('health.sourceAddress %j is taken', (sourceAddress) => {
    expect(parseAgentConfig({ ...minimal, health: { sourceAddress } }).health.sourceAddress).toBe(sourceAddress);
  });

  test('YAML text with flag overrides: flags win and are validated with the same paths', () => {
    const text = [
      'node: { name: node1, interface: eth0, address: 198.18.0.11 }',
      'bgp: { asn: 65001, peers: [{ address: 198.18.0.1, asn: 65000 }] }',
      'etcd: { endpoints: [http://127.0.0.1:2379] }',
    ].join('\n');
    const c = parseAgentConfigText(text, {
      'node.name': 'node7',
      'etcd.endpoints': 'http://198.18.0.1:2379,http://198.18.0.2:2379',
      'dataplane.driver': 'dry-run',
      'metrics.listen': '127.0.0.1:0',
      'nats.servers': undefined,
    });
    expect(c.node.name).toBe('node7');
    expect(c.etcd.endpoints).toEqual(['http://198.18.0.1:2379', 'http://198.18.0.2:2379']);
    expect(c.dataplane.driver).toBe('dry-run');
    expect(c.metrics.listen).toBe('127.0.0.1:0');
    expect(() => parseAgentConfigText(text, { 'bgp.asn': 'x' })).toThrow('bgp.asn: "x" is not an ASN');
  });

  // A file that is a list or a word was reported as node, bgp and etcd missing.
  test.each([
    ['- node: { name: node1 }', '[{"node":{"name":"node1"}}]'],
    ['hello', '"hello"'],
    ['42', '42'],
  ])('YAML %j that is no mapping is refused as such', (text, shown) => {
    const err = (() => {
      try {
        parseAgentConfigText(text, { 'dataplane.driver': 'dry-run' });
      } catch (e) {
        return e as AgentError;
      }
      throw new Error('expected the config to be refused');
    })();
    expect(err).toBeInstanceOf(AgentError);
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.message).toBe(`the agent config is ${shown}, not an object`);
    expect(err.problems).toEqual([{ path: '', message: `the agent config is ${shown}, not an object` }]);
  });

  test('an empty file is flags alone (no config object yet)', () => {
    expect(() => parseAgentConfigText('', {})).toThrow(/node: missing/);
  });

  test('broken YAML is one problem naming the syntax error', () => {
    expect(() => parseAgentConfigText('node: [')).toThrow(/not valid YAML/);
  });

  test('overrides cannot reach the prototype', () => {
    expect(() => applyOverrides({}, { '__proto__.x': 1 })).toThrow(AgentError);
  });
});

describe('agent config - the lab', () => {
  test("the lab's agent.yaml (lab/src/runtime/agent.ts) is valid as written", () => {
    const lab = {
      fleet: 'default',
      node: { name: 'node1', interface: 'fab0', address: '198.18.1.11', address6: '2001:db8:1::11' },
      bgp: {
        asn: 65001,
        routerId: '198.18.1.11',
        gobgpdAddress: '127.0.0.1:50051',
        peers: [
          {
            address: '198.18.1.1',
            asn: 65000,
            password: 'l4fleet',
            holdTimeS: 3,
            keepaliveS: 1,
            localAddress: '198.18.1.11',
          },
        ],
      },
      etcd: { endpoints: ['http://198.19.0.2:2379'] },
      nats: { servers: ['nats://198.19.0.2:4222'] },
      metrics: { listen: '198.19.0.11:9469' },
      dataplane: { driver: 'nftables' },
    };
    const c = parseAgentConfig(lab);
    expect(c.node.address6).toBe('2001:db8:1::11');
    expect(c.bgp.peers[0]?.localAddress).toBe('198.18.1.11');
  });
});

describe('agent config - a secret is never repeated in a message', () => {
  const SECRET = '31415926';
  const withSecret = (path: string, value: unknown): Record<string, unknown> => {
    if (path === 'bgp.peers[0].password')
      return { ...minimal, bgp: { ...minimal.bgp, peers: [{ address: '198.18.0.1', asn: 65000, password: value }] } };
    if (path === 'etcd.password') return { ...minimal, etcd: { ...minimal.etcd, user: 'agent', password: value } };
    if (path === 'nats.password')
      return { ...minimal, nats: { servers: ['nats://127.0.0.1:4222'], user: 'agent', password: value } };
    return { ...minimal, nats: { servers: ['nats://127.0.0.1:4222'], token: value } };
  };

  test.each([
    ['bgp.peers[0].password', 31415926, 'is a number, not a string: quote it'],
    ['etcd.password', 31415926, 'is a number, not a string: quote it'],
    ['nats.password', 31415926, 'is a number, not a string: quote it'],
    ['nats.token', 31415926, 'is a number, not a string: quote it'],
    ['nats.token', [31415926], 'is a list, not a string'],
    ['nats.token', { x: 31415926 }, 'is a map, not a string'],
    ['nats.token', true, 'is true or false, not a string: quote it'],
    ['nats.token', null, 'is empty'],
    ['nats.token', '', 'is empty'],
  ])('%s: %j says what kind of value it is, not the value', (path, value, said) => {
    const problems = problemsOf(withSecret(path, value));
    expect(problems).toContain(`${path}: ${said}`);
    expect(problems.join('\n')).not.toContain(SECRET);
  });

  const yamlWith = (password: string) =>
    [
      'node: {name: node1, interface: eth0, address: 198.18.0.11}',
      'etcd: {endpoints: ["http://127.0.0.1:2379"]}',
      'bgp:',
      '  asn: 65001',
      '  peers:',
      '    - address: 198.18.0.1',
      '      asn: 65000',
      `      password: ${password}`,
      '',
    ].join('\n');

  test.each([
    ['an alias (a password starting with *)', '*N3wS3cret', 'line 8, column 17'],
    ['an unknown tag (a password starting with !)', '!N3wS3cret', 'line 8, column 17'],
    ['a bad escape in double quotes', '"N3wS3cret\\q"', 'line 8, column 27'],
    ['a plain value starting with @', '@N3wS3cret', 'line 8, column 17'],
  ])('broken YAML at a secret (%s): the line and column, not the text', (_what, password, at) => {
    let err: AgentError | undefined;
    try {
      parseAgentConfigText(yamlWith(password));
    } catch (e) {
      err = e as AgentError;
    }
    expect(err).toBeInstanceOf(AgentError);
    expect(err?.code).toBe('CONFIG_INVALID');
    expect(err?.message).toMatch(new RegExp(`^not valid YAML at ${at}: `));
    expect(`${err?.message} ${JSON.stringify(err?.problems)}`).not.toContain('N3wS3cret');
  });
});

describe('agent config - nats.servers with a user or password in the URL', () => {
  // nats.js 2.29 ignores a URL's userinfo (it connects without login; an all-digit password is dialled as the port),
  // and the URL went into --check's output and the natsConnectFailed warning as written.
  test.each([
    ['nats://agent:N3wS3cret@198.19.0.2:4222', 'nats://***@198.19.0.2:4222'],
    ['tls://N3wS3cret@198.19.0.2:4222', 'tls://***@198.19.0.2:4222'],
    ['nats://agent:31415926@198.19.0.2', 'nats://***@198.19.0.2'],
  ])('%s is refused, shown masked, pointing at nats.user/password/token', (url, shown) => {
    const problems = problemsOf({ ...minimal, nats: { servers: ['nats://127.0.0.1:4222', url] } });
    expect(problems).toEqual([
      `nats.servers[1]: "${shown}": a user, password or token in the URL is not used by the NATS client: give them as nats.user and nats.password, or nats.token`,
    ]);
    expect(problems.join('\n')).not.toMatch(/N3wS3cret|31415926/);
  });
});

describe('agent config - a password in a URL without a scheme', () => {
  // maskUserinfo needed `//`: a user:password@ without a scheme went into --check's output, the log and the
  // config.reload event as written.
  test.each([
    ['nats.servers', { nats: { servers: ['agent:N3wS3cret@198.19.0.2:4222'] } }, '"***@198.19.0.2:4222"'],
    ['etcd.endpoints', { etcd: { endpoints: ['root:N3wS3cret@198.18.0.1:2379'] } }, '"***@198.18.0.1:2379"'],
  ])('%s: refused, the password masked', (_field, raw, shown) => {
    const problems = problemsOf({ ...minimal, ...raw });
    expect(problems.join('\n')).toContain(shown);
    expect(problems.join('\n')).not.toContain('N3wS3cret');
  });
});

describe('agent config - values that are not plain data', () => {
  const bad = { toString: 1 };
  test.each<[string, Record<string, unknown>]>([
    ['node.address', { ...minimal, node: { ...minimal.node, address: bad } }],
    ['bgp.routerId', { ...minimal, bgp: { ...minimal.bgp, routerId: bad } }],
    ['bgp.peers[0].address', { ...minimal, bgp: { ...minimal.bgp, peers: [{ address: bad, asn: 65000 }] } }],
    [
      'bgp.peers[0].localAddress',
      { ...minimal, bgp: { ...minimal.bgp, peers: [{ address: '198.18.0.1', asn: 65000, localAddress: bad }] } },
    ],
    ['bgp.listenAddresses[0]', { ...minimal, bgp: { ...minimal.bgp, listenAddresses: [bad] } }],
    ['bgp.communities[0]', { ...minimal, bgp: { ...minimal.bgp, communities: [bad] } }],
    ['bfd.peers[0]', { ...minimal, bfd: { peers: [bad] } }],
    ['health.sourceAddress', { ...minimal, health: { sourceAddress: bad } }],
    ['nats.servers[0]', { ...minimal, nats: { servers: [bad] } }],
    ['dataplane.proxyBindAddress', { ...minimal, dataplane: { driver: 'proxy', proxyBindAddress: bad } }],
  ])('%s: {toString: 1} is a problem naming the field, not a TypeError', (path, raw) => {
    const problems = problemsOf(raw);
    expect(problems.find((p) => p.startsWith(`${path}: {"toString":1} is not`))).toBeDefined();
  });

  test('an address nested 100,000 deep is shown cut short', () => {
    let deep: unknown = '198.18.0.11';
    for (let i = 0; i < 100_000; i++) deep = [deep];
    expect(problemsOf({ ...minimal, node: { ...minimal.node, address: deep } })).toContain(
      'node.address: [[[[...]]]] is not an IPv4 address',
    );
  });
});

describe('agent config - YAML 1.2 only', () => {
  const text = (extra: string) =>
    [
      'node: {name: node1, interface: eth0, address: 198.18.0.11}',
      'etcd: {endpoints: ["http://127.0.0.1:2379"]}',
      'bgp:',
      '  asn: 65001',
      '  peers:',
      '    - {address: 198.18.0.1, asn: 65000}',
      extra,
      '',
    ].join('\n');

  // YAML 1.1 reads 1:20 as 80 (sexagesimal), 0120 as 80 (octal), 1_0 as 10, yes as true, and merges `<<`.
  test.each(['1:20', '1_0'])(
    'bgp.listenPort: %s is a string in YAML 1.2; under a YAML 1.1 header the file is refused',
    (port) => {
      const body = text(`  listenPort: ${port}`);
      let err: AgentError | undefined;
      try {
        parseAgentConfigText(`%YAML 1.1\n---\n${body}`);
      } catch (e) {
        err = e as AgentError;
      }
      expect(err?.code).toBe('CONFIG_INVALID');
      expect(err?.message).toBe('not valid YAML at line 1, column 1: a %YAML 1.1 directive: agent.yaml is YAML 1.2');
      expect(() => parseAgentConfigText(body)).toThrow(/bgp\.listenPort: "1(:20|_0)" is not/);
    },
  );

  test('a merge key (<<) is a plain key: refused as an unknown field', () => {
    const body = [
      'm: &m {asn: 65000}',
      text('').replace('{address: 198.18.0.1, asn: 65000}', '{address: 198.18.0.1, <<: *m}'),
    ];
    expect(() => parseAgentConfigText(body.join('\n'))).toThrow(/bgp\.peers\[0\]\.<<: is not a known field/);
  });

  // Only the pre-check (textShapeProblem) may see these: a nesting deep enough to run the yaml library's stack out left
  // it broken, and a later parse in the same process (a reload's) aborted Node out of memory, uncatchable.
  test.each<[string, string, RegExp]>([
    [
      'a list nested 5,000 deep in brackets',
      `x: ${'['.repeat(5_000)}${']'.repeat(5_000)}\n`,
      /nests brackets 5,000 deep, .*\(MAX_FLEET_DEPTH\), from line 1$/,
    ],
    [
      'lists nested 40 deep in brackets',
      `x: ${'['.repeat(40)}1${']'.repeat(40)}\n`,
      /nests brackets 40 deep, .*\(MAX_FLEET_DEPTH\), from line 1$/,
    ],
    [
      'lists nested 200 deep in blocks',
      `x:\n  ${'- '.repeat(200)}1\n`,
      /indents line 2 more than 256 columns.*\(MAX_YAML_INDENT_COLUMNS\)/,
    ],
    [
      'maps nested 300 deep by indentation',
      Array.from({ length: 300 }, (_, i) => `${' '.repeat(i)}k${i}:`).join('\n'),
      /indents line 258 more than 256 columns.*\(MAX_YAML_INDENT_COLUMNS\)/,
    ],
  ])('%s is refused before parsing, every time it is read', (_name, text, expected) => {
    for (let i = 0; i < 3; i++) {
      let err: AgentError | undefined;
      try {
        parseAgentConfigText(text);
      } catch (e) {
        err = e as AgentError;
      }
      expect(err?.code).toBe('CONFIG_INVALID');
      expect(err?.message).toMatch(/^the config file /);
      expect(err?.message).toMatch(expected);
      expect(err?.problems).toEqual([{ path: '', message: err?.message }]);
    }
  });

  test('a file over MAX_AGENT_CONFIG_BYTES is refused by its size, naming the file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'l4fleet-agent-yaml-'));
    try {
      const file = join(dir, 'agent.yaml');
      writeFileSync(file, `# ${'x'.repeat(2 * MAX_AGENT_CONFIG_BYTES)}\n`);
      await expect(loadAgentConfig(file)).rejects.toMatchObject({
        code: 'CONFIG_INVALID',
        message: `the config file "${file}" is 2,097,155 bytes, more than the limit of 1,048,576 bytes (MAX_AGENT_CONFIG_BYTES)`,
      });
      // A device is not read at all (/dev/zero never ends): see the FIFO's test below.
      await expect(loadAgentConfig('/dev/zero')).rejects.toMatchObject({
        code: 'CONFIG_UNREADABLE',
        message: 'config file "/dev/zero" cannot be read: not a regular file',
      });
      writeFileSync(file, `x:\n  ${'- '.repeat(200)}1\n`);
      await expect(loadAgentConfig(file)).rejects.toThrow(`the config file "${file}" indents line 2 more than 256`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a FIFO at the path is refused unread, naming it: opening it waited for a writer, and every reload behind it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'l4fleet-agent-yaml-'));
    const fifo = join(dir, 'agent.yaml');
    let timer: NodeJS.Timeout | undefined;
    try {
      execFileSync('mkfifo', [fifo]);
      const waited = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('loadAgentConfig still waiting on the FIFO after 5 s')), 5_000);
      });
      await expect(Promise.race([loadAgentConfig(fifo), waited])).rejects.toMatchObject({
        code: 'CONFIG_UNREADABLE',
        message: `config file "${fifo}" cannot be read: not a regular file`,
      });
    } finally {
      clearTimeout(timer);
      // An open still blocked on the FIFO (the defect) is let go: a writer opens it, and closes at once.
      try {
        closeSync(openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK));
      } catch {
        // no reader waiting (ENXIO): nothing to let go
      }
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a text over MAX_AGENT_CONFIG_BYTES is refused by its size before parsing', () => {
    expect(() => parseAgentConfigText(`# ${'x'.repeat(MAX_AGENT_CONFIG_BYTES)}\n`)).toThrow(
      'the config file is 1,048,579 bytes, more than the limit of 1,048,576 bytes (MAX_AGENT_CONFIG_BYTES)',
    );
  });
});
