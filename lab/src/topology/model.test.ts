import { describe, expect, test } from 'vitest';
import { LabError } from '../errors.js';
import { MAX_ECMP_PATHS } from '../runtime/frr.js';
import { buildTopology, hostIfaceOf, hostOf, hostsOfKind, MAX_NODES, nextNodeIndex, prefixLength } from './model.js';

function ipv4ToInt(a: string): number {
  return a.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
}

function inPrefix(address: string, cidr: string): boolean {
  const [net = '', len = '0'] = cidr.split('/');
  const bits = Number(len);
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  return (ipv4ToInt(address) & mask) >>> 0 === (ipv4ToInt(net) & mask) >>> 0;
}

describe('lab topology - model', () => {
  test('default lab: 1 client, router, 3 nodes, 4 backends, control, host', () => {
    const t = buildTopology();
    expect(hostsOfKind(t, 'node').map((h) => h.name)).toEqual(['node1', 'node2', 'node3']);
    expect(hostsOfKind(t, 'backend')).toHaveLength(4);
    expect(hostsOfKind(t, 'client').map((h) => h.name)).toEqual(['client']);
    expect(hostOf(t, 'router').namespace).toBe('l4f-lab-router');
    expect(hostOf(t, 'host').namespace).toBeUndefined();
  });

  test.each([
    [1, 1],
    [3, 4],
    [20, 40],
  ])(
    'addresses: links in 198.18.0.0/15, VIPs in 198.51.100.0/24, IPv6 in 2001:db8::/32, all unique (%i nodes)',
    (nodes, backends) => {
      const t = buildTopology({ nodes, backends, clients: 2, controlSlot: 77 });
      const v4 = t.segments.flatMap((s) => s.attachments.map((a) => a.ipv4));
      for (const a of v4) {
        expect(inPrefix(a, '198.18.0.0/15'), a).toBe(true);
        expect(inPrefix(a, '192.0.2.0/24') || inPrefix(a, '203.0.113.0/24'), a).toBe(false);
      }
      expect(new Set(v4).size).toBe(v4.length);
      for (const s of t.segments)
        for (const a of s.attachments) expect(inPrefix(a.ipv4, s.ipv4Prefix), `${s.name} ${a.ipv4}`).toBe(true);
      const v6 = t.segments.flatMap((s) => s.attachments.flatMap((a) => (a.ipv6 ? [a.ipv6] : [])));
      for (const a of v6) expect(a.startsWith('2001:db8:'), a).toBe(true);
      expect(new Set(v6).size).toBe(v6.length);
      for (const vip of t.vips) {
        if (vip.address.includes(':')) expect(vip.address.startsWith('2001:db8:')).toBe(true);
        else expect(inPrefix(vip.address, '198.51.100.0/24')).toBe(true);
      }
    },
  );

  test('interface names fit IFNAMSIZ and the root-namespace one carries the l4f- prefix', () => {
    const t = buildTopology({ id: 'abcdefgh', nodes: MAX_NODES, backends: 150 });
    for (const s of t.segments) for (const a of s.attachments) expect(a.iface.length, a.iface).toBeLessThanOrEqual(15);
    expect(hostIfaceOf('abcdefgh')).toBe('l4f-abcdefgh-h');
    for (const h of t.hosts) if (h.namespace) expect(h.namespace.startsWith('l4f-abcdefgh-')).toBe(true);
  });

  test('only the control segment depends on the slot (the one touching the root namespace)', () => {
    const a = buildTopology({ controlSlot: 1 });
    const b = buildTopology({ controlSlot: 2 });
    for (const s of a.segments) {
      const other = b.segments.find((x) => x.name === s.name);
      if (s.name === 'control') expect(other?.ipv4Prefix).not.toBe(s.ipv4Prefix);
      else expect(other).toEqual(s);
    }
    expect(a.control.etcdEndpoints).toEqual([
      'http://198.19.1.2:2379',
      'http://198.19.1.2:12379',
      'http://198.19.1.2:22379',
    ]);
    expect(prefixLength(a.segments.find((s) => s.name === 'control')?.ipv4Prefix ?? '')).toBe(24);
  });

  test('etcd: three members by default, one on request; names never collide with hosts', () => {
    const t = buildTopology();
    expect(t.control.etcdMembers.map((m) => [m.name, m.clientUrl, m.peerUrl])).toEqual([
      ['etcd1', 'http://198.19.0.2:2379', 'http://127.0.0.1:2380'],
      ['etcd2', 'http://198.19.0.2:12379', 'http://127.0.0.1:12380'],
      ['etcd3', 'http://198.19.0.2:22379', 'http://127.0.0.1:22380'],
    ]);
    for (const m of t.control.etcdMembers) expect(t.hosts.map((h) => h.name)).not.toContain(m.name);
    expect(buildTopology({ etcdMembers: 1 }).control.etcdEndpoints).toEqual(['http://198.19.0.2:2379']);
  });

  test('add-node takes the next index, never reusing a name', () => {
    const t = buildTopology({ nodeIndexes: [1, 2, 5] });
    expect(nextNodeIndex(t)).toBe(6);
    const u = buildTopology({ nodeIndexes: [1, 2, 5, 6] });
    expect(hostsOfKind(u, 'node').map((h) => h.name)).toEqual(['node1', 'node2', 'node5', 'node6']);
  });

  test.each([
    [{ id: 'Bad_Id' }, 'lab id "Bad_Id"'],
    [{ nodes: 0 }, 'nodes 0'],
    [{ backends: 151 }, 'backends 151'],
    [{ controlSlot: 256 }, 'controlSlot 256'],
    [{ etcdMembers: 2 }, 'etcdMembers 2 is not one of 1, 3, 5'],
  ])('invalid options are refused naming the field: %j', (options, message) => {
    expect(() => buildTopology(options)).toThrow(LabError);
    expect(() => buildTopology(options)).toThrow(message);
  });

  test.each([
    [{ nodes: 1e10 }, 'nodes 10000000000 is not an integer in 1..'],
    [{ nodes: 2.5 }, 'nodes 2.5 is not an integer in 1..'],
    [{ nodeIndexes: [2, 2] }, 'node index 2 appears twice'],
    [{ nodeIndexes: [1, 3, 1] }, 'node index 1 appears twice'],
  ])('lab topology - a node count or index list that cannot be built is refused naming it: %j', (options, message) => {
    expect(() => buildTopology(options)).toThrow(LabError);
    expect(() => buildTopology(options)).toThrow(message);
  });

  test('lab topology - never more nodes than the router takes ECMP paths (lab up waits for one next hop per node)', () => {
    expect(MAX_NODES).toBeLessThanOrEqual(MAX_ECMP_PATHS);
    expect(() => buildTopology({ nodes: MAX_ECMP_PATHS + 1 })).toThrow(`nodes ${MAX_ECMP_PATHS + 1} is not an integer`);
    expect(() => buildTopology({ nodeIndexes: [MAX_ECMP_PATHS + 1] })).toThrow('node index');
  });

  test('unknown host names the lab and lists the hosts', () => {
    expect(() => hostOf(buildTopology(), 'node9')).toThrow(/host "node9" is not in lab "lab" \(hosts: host, client/);
  });
});
