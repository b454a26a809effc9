import { BlockList, isIPv6 } from 'node:net';
import { parseAgentConfigText } from '@l4fleet/agent';
import { describe, expect, test } from 'vitest';
import { parse } from 'yaml';
import { containerlabBindFiles, containerlabYaml, toContainerlab } from './containerlab.js';
import { NFTABLES_DATA_PATH } from './data-path.js';
import { backendSegmentOf, buildTopology, hostsOfKind, labIdOfNamespace, type Topology } from './model.js';

type Nodes = Record<string, { image?: string; cmd?: string; entrypoint?: string; binds?: string[]; exec?: string[] }>;
const topology = () => buildTopology({ ...NFTABLES_DATA_PATH });
const nodesOf = (t = topology()) => (toContainerlab(t) as { topology: { nodes: Nodes } }).topology.nodes;

describe('containerlab export', () => {
  test('containerlab - the control node starts etcd and NATS once its address is on (its image has no command)', () => {
    const t = topology();
    const control = nodesOf(t).control;
    expect(control?.cmd).toMatch(/^sh -c '.*'$/);
    expect(control?.cmd).toContain('until ip -4 addr show | grep -q "inet 198.19.0.2/"');
    expect(control?.cmd?.match(/\/usr\/bin\/etcd /g)).toHaveLength(t.control.etcdMembers.length);
    expect(control?.cmd).toContain('exec /usr/sbin/nats-server');
    // Its exec puts that address on with ip: the wait and the exec name the same one.
    expect(control?.exec?.some((c) => c.startsWith('ip addr add 198.19.0.2/'))).toBe(true);
  });

  test('containerlab - the client overrides the backend image entrypoint and stays up', () => {
    const client = nodesOf().client;
    expect(client?.image).toBe('l4fleet/backend:latest');
    expect(client?.entrypoint).toBe('sleep');
    expect(client?.cmd).toBe('infinity');
  });

  test('containerlab - every file a node binds is among the bind files, and the agent uses its fabric interface', () => {
    const t = topology();
    const nodes = nodesOf(t);
    const files = containerlabBindFiles(t);
    const bound = Object.values(nodes).flatMap((n) => (n.binds ?? []).map((b) => b.split(':')[0]));
    expect(bound.length).toBeGreaterThan(1);
    expect([...files.keys()].sort()).toEqual([...bound].sort());
    expect(files.get('router/bgpd.conf')).toMatch(/^router bgp /m);
    const agent = parseAgentConfigText(files.get('node1/agent.yaml') ?? '');
    expect(agent.node.name).toBe('node1');
    // node1's fabric address is set on that interface by its exec.
    expect(nodes.node1?.exec).toContain(`ip addr add ${agent.node.address}/24 dev ${agent.node.interface}`);
    expect(agent.node.interface).not.toBe('eth0');
  });

  test('containerlab - the header says how to write the bind files', () => {
    const header = containerlabYaml(topology())
      .split('\n')
      .filter((l) => l.startsWith('#'))
      .join('\n');
    expect(header).toContain('router/bgpd.conf');
    expect(header).toContain('deploy/containerlab/write-bind-files.mjs');
    expect(parse(containerlabYaml(topology()))).toEqual(toContainerlab(topology()));
  });

  test('containerlab - its containers and netns links have no lab namespace name (lab down --all leaves them)', () => {
    for (const id of ['lab', 'l4f', 'a1']) {
      const t = buildTopology({ ...NFTABLES_DATA_PATH, id });
      const doc = toContainerlab(t) as { name: string; prefix: string; topology: { nodes: Nodes } };
      // containerlab names each container, and its /run/netns link, `<prefix>-<lab name>-<node>`.
      for (const node of Object.keys(doc.topology.nodes)) {
        expect(labIdOfNamespace(`${doc.prefix}-${doc.name}-${node}`)).toBeUndefined();
      }
    }
  });

  /** The `ip route replace PREFIX via GW` lines of a node's exec, with the family of each. */
  function routesOf(node: { exec?: string[] } | undefined): { prefix: string; via: string; v6: boolean }[] {
    return (node?.exec ?? []).flatMap((c) => {
      const m = /^ip (-6 )?route replace (\S+) via (\S+)$/.exec(c);
      return m?.[2] && m[3] ? [{ prefix: m[2], via: m[3], v6: m[1] !== undefined }] : [];
    });
  }
  const covers = (prefix: string, address: string) => {
    const [net, len] = prefix.split('/');
    const family = isIPv6(address) ? 'ipv6' : 'ipv4';
    const list = new BlockList();
    list.addSubnet(net ?? '', Number(len), family);
    return list.check(address, family);
  };
  const routerOn = (t: Topology, segment: string) =>
    t.segments.find((s) => s.name === segment)?.attachments.find((a) => a.host === 'router');

  test.each([1, 2])(
    'containerlab - every VIP family: each client reaches the VIP, each backend and node the clients, via the router (%i clients)',
    (clients) => {
      const t = buildTopology({ ...NFTABLES_DATA_PATH, clients });
      const nodes = nodesOf(t);
      const families = [...new Set(t.vips.map((v) => isIPv6(v.address)))];
      expect(families).toEqual([false, true]);
      for (const client of hostsOfKind(t, 'client')) {
        const access = `access-${client.name}`;
        const gw = routerOn(t, access);
        const own = t.segments.find((s) => s.name === access)?.attachments.find((a) => a.host === client.name);
        for (const vip of t.vips) {
          const v6 = isIPv6(vip.address);
          const via = v6 ? gw?.ipv6 : gw?.ipv4;
          expect(
            routesOf(nodes[client.name]).filter((r) => r.v6 === v6 && r.via === via && covers(r.prefix, vip.address)),
            `${client.name} -> ${vip.address}`,
          ).not.toEqual([]);
          // The way back: every backend and node routes the client's access address of that family via the router.
          const back = v6 ? own?.ipv6 : own?.ipv4;
          for (const h of [...hostsOfKind(t, 'backend'), ...hostsOfKind(t, 'node')]) {
            const r = routerOn(t, h.kind === 'backend' ? backendSegmentOf(t).name : 'fabric');
            const hop = v6 ? r?.ipv6 : r?.ipv4;
            expect(
              routesOf(nodes[h.name]).filter((x) => x.v6 === v6 && x.via === hop && covers(x.prefix, back ?? '')),
              `${h.name} -> ${back}`,
            ).not.toEqual([]);
          }
        }
      }
    },
  );
});
