import { spawnAgent } from '@l4fleet/test-support/agent-process';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  createNatTopology,
  MEMBER_PORT,
  MEMBER_SERVER_PY,
  member4,
  NAT_CLIENT_PY,
  NAT_CLIENT4,
  NAT_NODE4,
  NAT_VIP4,
  type NatTopology,
} from './dataplane/nat-topology.js';

/** The agent process of test/agent-bpf.int.test.ts: argv = agent.yaml and fleet as JSON, memory store, fake speaker. */
const MEMBERS = 2;

describe('agent - a NAT pool serves the client end to end', () => {
  let topo: NatTopology;

  beforeAll(async () => {
    topo = await createNatTopology({ members: MEMBERS });
    const servers = topo.members.map((m, i) => m.spawn(['python3', '-c', MEMBER_SERVER_PY, `m${i}`, `${MEMBER_PORT}`]));
    await Promise.all(servers.map((s) => new Promise((r) => s.stdout?.once('data', r))));
  }, 120_000);

  afterAll(async () => {
    await topo?.cleanup();
  });

  test('agent - forwarding nat with member port 8443 behind VIP:443 and a profile: served through the node', async () => {
    const config = {
      node: { name: 'n1', interface: 'eth0', address: NAT_NODE4 },
      bgp: { asn: 65001, peers: [{ address: '198.18.82.1', asn: 65000 }] },
      etcd: { endpoints: ['http://127.0.0.1:2379'] }, // unused: the store is given
      metrics: { listen: '127.0.0.1:0' },
      state: { enabled: false },
      dataplane: { driver: 'nftables' },
    };
    const fleet = {
      hashSeed: 7,
      pools: [
        {
          name: 'web',
          forwarding: 'nat',
          healthCheck: { type: 'tcp', intervalMs: 500, timeoutMs: 250, rise: 1, fall: 2 },
          members: Array.from({ length: MEMBERS }, (_x, i) => ({
            name: `m${i}`,
            address: member4(i),
            port: MEMBER_PORT,
          })),
        },
      ],
      vips: [
        {
          address: NAT_VIP4,
          port: 443,
          protocol: 'tcp',
          pool: 'web',
          tableSize: 251,
          profile: { idleTimeoutS: 120, tcpHandshakeTimeoutS: 4, tcpCloseTimeoutS: 6, onTimeout: 'reset' },
        },
      ],
    };
    const agent = spawnAgent(topo.node, config, fleet);
    const { child } = agent;
    try {
      // Bounded: 30 s, every 250 ms, until the agent has programmed the NAT table.
      let listing = '';
      const deadline = Date.now() + 30_000;
      for (let i = 0; i < 120 && Date.now() < deadline && child.exitCode === null; i++) {
        const r = await topo.node.run(['nft', 'list', 'table', 'inet', 'l4fleet_nat'], { allowFailure: true });
        listing = r.stdout;
        if (listing.includes('tcp . 443')) break;
        await new Promise((r) => setTimeout(r, 250));
      }
      expect(child.exitCode, agent.stderr()).toBeNull();
      expect(listing, agent.stderr()).toContain(`${NAT_VIP4} . tcp . 443`);
      expect(listing).toContain('ct timeout to_tcp4_120_4_6');
      expect(listing).toContain('reject with tcp reset');

      const flows = Array.from({ length: 16 }, (_x, i) => ({
        src: NAT_CLIENT4,
        sport: 47_000 + i,
        dst: NAT_VIP4,
        dport: 443,
        protocol: 'tcp',
      }));
      const r = await topo.client.run(['python3', '-c', NAT_CLIENT_PY], {
        input: JSON.stringify(flows),
        timeoutMs: 60_000,
      });
      const answers = r.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { reply?: string; from?: [string, number] });
      expect(answers).toHaveLength(flows.length);
      for (const a of answers) {
        expect(a.reply).toMatch(new RegExp(`^m\\d ${NAT_NODE4.replaceAll('.', '\\.')}$`));
        expect(a.from).toEqual([NAT_VIP4, 443]);
      }
      // Both members served (Maglev spreads 16 flows over 2 members).
      expect(new Set(answers.map((a) => a.reply?.split(' ')[0])).size).toBe(MEMBERS);
    } finally {
      await agent.stop();
    }
  }, 90_000);
});
