/**
 * The agent with the nftables data plane and only the capabilities deploy/systemd/l4fleet-agent.service grants
 * (its CapabilityBoundingSet and SupplementaryGroups, through setpriv as root): an agent process in a network namespace (memory store, fake
 * speaker) programs its VIP into its netdev table. test/agent-bpf.int.test.ts does the same for the bpf driver.
 * Run under the ns lock; root only, else skipped.
 */

import { spawnAgent } from '@l4fleet/test-support/agent-process';
import { createNetnsLab, type NetnsHost, type NetnsLab } from '@l4fleet/test-support/netns';
import { setprivAsUnit, unitFile } from '@l4fleet/test-support/systemd';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

const NODE4 = '198.18.42.2';
const VIP4 = '198.51.100.42';
const TABLE = 'l4fcaps';

describe.skipIf(process.getuid?.() !== 0)('agent - nftables with the systemd unit capabilities', () => {
  let lab: NetnsLab;
  let node: NetnsHost;

  beforeAll(async () => {
    lab = await createNetnsLab('l4uc');
    node = await lab.host('node');
    const router = await lab.host('rtr');
    await lab.veth(node, 'eth0', router, 'eth0');
    await node.addr('eth0', `${NODE4}/24`);
    await router.addr('eth0', '198.18.42.1/24');
  });

  afterAll(async () => {
    await lab?.cleanup();
  });

  test('the agent under CapabilityBoundingSet of l4fleet-agent.service programs its VIP into its nftables table', async () => {
    const config = {
      node: { name: 'n1', interface: 'eth0', address: NODE4 },
      bgp: { asn: 65001, peers: [{ address: '198.18.42.1', asn: 65000 }] },
      etcd: { endpoints: ['http://127.0.0.1:2379'] }, // unused: the store is given
      metrics: { listen: '127.0.0.1:0' },
      state: { enabled: false },
      dataplane: { driver: 'nftables', table: TABLE, flowTableSize: 1024 },
    };
    const fleet = {
      hashSeed: 7,
      pools: [
        { name: 'web', healthCheck: { type: 'none' }, members: [{ name: 'be1', address: '198.18.42.10', port: 80 }] },
      ],
      vips: [{ address: VIP4, port: 80, protocol: 'tcp', pool: 'web', tableSize: 251 }],
    };
    const agent = spawnAgent(node, config, fleet, setprivAsUnit(unitFile('l4fleet-agent.service')));
    const { child } = agent;
    try {
      // Bounded: 30 s, every 250 ms, until the VIP is in the table.
      let table = '';
      const deadline = Date.now() + 30_000;
      for (let i = 0; i < 120 && Date.now() < deadline; i++) {
        const r = await node.run(['nft', 'list', 'table', 'netdev', TABLE], { allowFailure: true });
        table = r.stdout;
        if (table.includes(VIP4) || child.exitCode !== null) break;
        await new Promise((r) => setTimeout(r, 250));
      }
      expect(child.exitCode, agent.stderr()).toBeNull();
      expect(table, agent.stderr()).toContain(VIP4);
      expect(agent.stderr()).not.toMatch(/tablesApplyFailed/);
    } finally {
      await agent.stop();
      await node.run(['nft', 'delete', 'table', 'netdev', TABLE], { allowFailure: true });
    }
  }, 60_000);

  test('the proxy driver under the unit listens on a VIP port below 1024 (CAP_NET_BIND_SERVICE)', async () => {
    const config = {
      node: { name: 'n1', interface: 'eth0', address: NODE4 },
      bgp: { asn: 65001, peers: [{ address: '198.18.42.1', asn: 65000 }] },
      etcd: { endpoints: ['http://127.0.0.1:2379'] }, // unused: the store is given
      metrics: { listen: '127.0.0.1:0' },
      state: { enabled: false },
      dataplane: { driver: 'proxy', proxyBindAddress: NODE4 },
    };
    const fleet = {
      hashSeed: 7,
      pools: [
        { name: 'web', healthCheck: { type: 'none' }, members: [{ name: 'be1', address: '198.18.42.10', port: 80 }] },
      ],
      vips: [{ address: VIP4, port: 80, protocol: 'tcp', pool: 'web', tableSize: 251 }],
    };
    const agent = spawnAgent(node, config, fleet, setprivAsUnit(unitFile('l4fleet-agent.service')));
    const { child } = agent;
    try {
      // Bounded: 30 s, every 250 ms, until something listens on port 80 (or the agent says why it cannot).
      let listening = '';
      const deadline = Date.now() + 30_000;
      for (let i = 0; i < 120 && Date.now() < deadline; i++) {
        listening = (await node.run(['ss', '-Hltn', 'sport', '=', ':80'])).stdout;
        if (listening.includes(`${NODE4}:80`) || child.exitCode !== null || /EACCES/.test(agent.stderr())) break;
        await new Promise((r) => setTimeout(r, 250));
      }
      expect(child.exitCode, agent.stderr()).toBeNull();
      expect(listening, agent.stderr()).toContain(`${NODE4}:80`);
    } finally {
      await agent.stop();
    }
  }, 60_000);
});
