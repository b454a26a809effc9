import { parseAgentConfigText } from '@l4fleet/agent';
import { describe, expect, test } from 'vitest';
import { parse } from 'yaml';
import { containerlabBindFiles, containerlabYaml, toContainerlab } from './containerlab.js';
import { NFTABLES_DATA_PATH } from './data-path.js';
import { buildTopology } from './model.js';

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
});
