import { parseBgpSummary } from '@l4fleet/daemons';
import { describe, expect, test } from 'vitest';
import { NFTABLES_DATA_PATH } from '../topology/data-path.js';
import { buildTopology, hostsOfKind } from '../topology/model.js';
import { bgpdConfig } from './frr.js';
import { gobgpdStaticConfig } from './gobgp.js';
import { hostScript, hubBridgeMac, topologyScript } from './netns-plan.js';
import { observeRuleset, parseObservedSet, staticForwarderRuleset } from './nft.js';

// nftables with backends on the fabric: static mode's forwarder and the l2 backends (VIPs on lo) are checked here;
// routed backends and their setup in data-path-wiring.test.ts.
const topology = buildTopology({ id: 'x1', controlSlot: 5, ...NFTABLES_DATA_PATH });

describe('lab netns plan - wiring from the model', () => {
  test('namespaces first, then links (hubs before their members), then settings', () => {
    const script = topologyScript(topology);
    const lines = script.split('\n');
    const firstLink = lines.findIndex((l) => l.includes(' link add '));
    const lastNs = lines.map((l) => l.includes('ip netns add')).lastIndexOf(true);
    expect(lastNs).toBeLessThan(firstLink);
    expect(lines.findIndex((l) => l.includes('type bridge'))).toBeLessThan(
      lines.findIndex((l) => l.includes('master br0')),
    );
    expect(script).toContain('ip -n l4f-x1-control link add c-host type veth peer name l4f-x1-h netns 1');
    expect(script).toContain('ip addr replace 198.19.5.1/24 dev l4f-x1-h');
  });

  test("hub bridges have their own fixed MAC (not their lowest port's, which changes when that port goes)", () => {
    const script = topologyScript(topology);
    const bridges = script.split('\n').filter((l) => l.includes('type bridge'));
    expect(bridges.length).toBeGreaterThan(0);
    const macs = new Set<string>();
    for (const line of bridges) {
      const mac = /address (\S+) type bridge/.exec(line)?.[1];
      expect(mac, line).toMatch(/^02(:[0-9a-f]{2}){5}$/);
      macs.add(mac as string);
    }
    expect(macs.size).toBe(bridges.length);
    const fabric = topology.segments.find((s) => s.name === 'fabric');
    if (!fabric) throw new Error('no fabric segment');
    expect(hubBridgeMac(topology, fabric)).toBe(hubBridgeMac(topology, fabric));
    expect(hubBridgeMac(buildTopology({ id: 'x2', controlSlot: 5 }), fabric)).not.toBe(hubBridgeMac(topology, fabric));
  });

  test('router: forwarding and per-flow L4 multipath hash; client: no TCP rehash; backends: VIPs on lo, ARP quiet', () => {
    const script = topologyScript(topology);
    expect(script).toMatch(/l4f-x1-router sysctl -q .*net\.ipv4\.fib_multipath_hash_policy=1/);
    expect(script).toMatch(/l4f-x1-client sysctl -q .*net\.core\.txrehash=0/);
    expect(script).toMatch(/l4f-x1-backend1 sysctl -q .*arp_ignore=1 .*arp_announce=2/);
    expect(script).toContain('ip -n l4f-x1-backend1 addr replace 198.51.100.10/32 dev lo');
    expect(script).toContain('ip -n l4f-x1-backend1 -6 addr replace 2001:db8:100::10/128 dev lo nodad');
  });

  test('one host alone (add-node, restart) re-creates its own links only', () => {
    const script = hostScript(buildTopology({ id: 'x1', nodes: 4 }), 'node4');
    expect(script).toContain('ip netns add l4f-x1-node4');
    expect(script).toContain('ip -n l4f-x1-router link add f-node4 type veth peer name eth0 netns l4f-x1-node4');
    expect(script).toContain('ip -n l4f-x1-control link add c-node4 type veth peer name eth1 netns l4f-x1-node4');
    expect(script).not.toContain('node3');
  });
});

describe('lab router and sidecar configs', () => {
  test('FRR: one explicit neighbor per node in a peer-group, MD5, hold 3 / keepalive 1, connect 1, multipath, no RFC 8212 default deny', () => {
    const conf = bgpdConfig(topology);
    for (const line of [
      'router bgp 65000',
      ' no bgp ebgp-requires-policy',
      ' neighbor NODES remote-as 65001',
      ' neighbor NODES password l4fleet-lab',
      ' neighbor NODES timers 1 3',
      ' neighbor NODES timers connect 1',
      '  neighbor NODES activate',
      '  maximum-paths 64',
    ]) {
      expect(conf.split('\n')).toContain(line);
    }
    // A dynamic neighbor would be passive and wait 5-9 s for gobgpd to dial (frr.ts).
    expect(conf).not.toContain('listen range');
    expect(conf.split('\n').filter((l) => / neighbor \d/.test(l))).toEqual(
      hostsOfKind(topology, 'node').map((_, i) => ` neighbor 198.18.2.${11 + i} peer-group NODES`),
    );
  });

  test('FRR: the neighbors follow the node indexes (add-node, a gap after a removed node)', () => {
    const conf = bgpdConfig(buildTopology({ nodeIndexes: [1, 3, 4] }));
    expect(conf.split('\n').filter((l) => / neighbor \d/.test(l))).toEqual([
      ' neighbor 198.18.2.11 peer-group NODES',
      ' neighbor 198.18.2.13 peer-group NODES',
      ' neighbor 198.18.2.14 peer-group NODES',
    ]);
  });

  test('gobgpd static config: listens on the node address only, the router as the one peer', () => {
    const conf = gobgpdStaticConfig(topology, 'node2');
    expect(conf).toContain('port = 179');
    expect(conf).toContain('local-address-list = ["198.18.2.12"]');
    expect(conf).toContain('neighbor-address = "198.18.2.1"');
    expect(conf).toContain('router-id = "198.18.2.12"');
    expect(conf).toContain('hold-time = 3');
  });

  test('FRR summary JSON: peers with state and received prefixes', () => {
    const json = JSON.stringify({
      ipv4Unicast: {
        peers: { '198.18.2.11': { state: 'Established', pfxRcd: 2 }, '198.18.2.12': { state: 'Active' } },
      },
    });
    expect(parseBgpSummary(json)).toEqual([
      { address: '198.18.2.11', state: 'Established', prefixesReceived: 2 },
      { address: '198.18.2.12', state: 'Active', prefixesReceived: 0 },
    ]);
  });
});

describe('lab nftables tables', () => {
  test('observe table: on egress of the router port toward the node, only updates a set', () => {
    const rules = observeRuleset('l4f-observe-node1', 'f-node1');
    expect(rules).toContain('table netdev l4f-observe-node1 {');
    expect(rules).toContain('type filter hook egress device "f-node1" priority -500');
    expect(rules).not.toMatch(/\b(fwd|drop|dnat|snat)\b/);
  });

  test('static forwarder: one map entry per backend, the same seed everywhere, DSR fwd', () => {
    const rules = staticForwarderRuleset(topology, 'eth0');
    expect(rules).toContain('0 : 198.18.2.101, 1 : 198.18.2.102, 2 : 198.18.2.103, 3 : 198.18.2.104');
    expect(rules).toMatch(
      /jhash ip saddr \. tcp sport \. ip daddr \. tcp dport mod 4 seed \d+ fwd ip to meta mark map @backends4 device "eth0"/,
    );
  });

  test('observed set from nft -j: client, protocol, port, expiry', () => {
    const json = JSON.stringify({
      nftables: [
        { metainfo: { version: '1.0.6' } },
        {
          set: {
            name: 'flows4',
            elem: [
              { elem: { val: { concat: ['198.18.1.2', 'tcp', 40001] }, timeout: 2, expires: 1.9 } },
              { elem: { val: { concat: ['198.18.1.2', 'udp', 40002] }, timeout: 2, expires: 0.5 } },
            ],
          },
        },
      ],
    });
    expect(parseObservedSet(json)).toEqual([
      { client: '198.18.1.2', protocol: 'tcp', port: 40001, expiresS: 1.9 },
      { client: '198.18.1.2', protocol: 'udp', port: 40002, expiresS: 0.5 },
    ]);
  });
});
