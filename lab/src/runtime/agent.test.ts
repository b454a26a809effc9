import { parseAgentConfigText } from '@l4fleet/agent';
import { describe, expect, test } from 'vitest';
import { buildTopology } from '../topology/model.js';
import { agentYaml } from './agent.js';

describe('lab agent config', () => {
  test.each(['node1', 'node2', 'node3'])(
    'the agent.yaml of %s is accepted by the agent and says what the lab means',
    (node) => {
      const topology = buildTopology({ controlSlot: 9 });
      const c = parseAgentConfigText(agentYaml(topology, node));
      const i = Number(node.slice(4));
      expect(c.node).toEqual({
        name: node,
        interface: 'eth0',
        address: `198.18.2.${10 + i}`,
        address6: `2001:db8:2::${(16 + i).toString(16)}`,
      });
      expect(c.bgp.asn).toBe(65001);
      // The router dials the node (FRR explicit neighbor): gobgpd listens on the node's fabric address only.
      expect(c.bgp.listenPort).toBe(179);
      expect(c.bgp.listenAddresses).toEqual([`198.18.2.${10 + i}`]);
      expect(c.bgp.peers[0]).toMatchObject({
        address: '198.18.2.1',
        asn: 65000,
        holdTimeS: 3,
        keepaliveS: 1,
        password: 'l4fleet-lab',
      });
      expect(c.bgp.gobgpdAddress).toBe('127.0.0.1:50051');
      // Every member of the lab's etcd cluster: the agent's client fails over between them.
      expect(c.etcd.endpoints).toEqual([
        'http://198.19.9.2:2379',
        'http://198.19.9.2:12379',
        'http://198.19.9.2:22379',
      ]);
      expect(c.nats.servers).toEqual(['nats://198.19.9.2:4222']);
      expect(c.metrics.listen).toBe(`198.19.9.${10 + i}:9469`);
    },
  );

  test('the netns runtime keeps the agent state file inside the lab state dir (lab down removes it)', () => {
    const topology = buildTopology({ controlSlot: 9 });
    expect(parseAgentConfigText(agentYaml(topology, 'node1', '/run/l4fleet-lab/x/node1')).state.dir).toBe(
      '/run/l4fleet-lab/x/node1',
    );
  });
});
