/**
 * The agent with `dataplane: { driver: bpf }` against the real kernel: an agent process in a network namespace
 * (memory store, fake speaker: the data plane is the part under test) attaches the tc program to its veth, pins the
 * maps under the configured bpffs path and pin name, and programs the fleet's VIP; restarted with `xdp: native`, it
 * also attaches the XDP fast path; and, from nothing, with only the capabilities deploy/systemd/l4fleet-agent.service
 * grants (setpriv, test/support/systemd.ts). The pool here forwards `l2`; the encapsulations through the agent are
 * test/lab-bpf-routed's. Run under the ns lock.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bpfAvailable } from '@l4fleet/dataplane';
import { spawnAgent } from '@l4fleet/test-support/agent-process';
import { createNetnsLab, type NetnsHost, type NetnsLab } from '@l4fleet/test-support/netns';
import { setprivAsUnit, unitFile } from '@l4fleet/test-support/systemd';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

const BPFFS = `/run/l4fleet-agent-bpf-${process.pid}`;
const PIN = 'agentbpf';
const UNIT_PIN = 'agentunit';
const NODE4 = '198.18.40.2';
const VIP4 = '198.51.100.40';

const built = bpfAvailable() === undefined;

describe.skipIf(!built)('agent - dataplane driver bpf on a veth', () => {
  let lab: NetnsLab;
  let node: NetnsHost;
  let dir = '';

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'l4fleet-agent-bpf-'));
    // Mounted here, before the agent: `ip netns exec` gives the agent a private mount namespace, so a bpffs it
    // mounted itself would be invisible to this process; this mount is shared into it, and so are its pins.
    mkdirSync(BPFFS, { recursive: true });
    expect(spawnSync('mount', ['-t', 'bpf', 'bpf', BPFFS]).status).toBe(0);
    lab = await createNetnsLab('l4ab');
    node = await lab.host('node');
    const router = await lab.host('rtr');
    await lab.veth(node, 'eth0', router, 'eth0');
    await node.addr('eth0', `${NODE4}/24`);
    await router.addr('eth0', '198.18.40.1/24');
  });

  /** The name of the XDP program on the node's eth0, if any. */
  const xdpProgram = async (): Promise<string | undefined> => {
    const [link] = JSON.parse(await node.sh('ip -j link show dev eth0')) as { xdp?: { prog?: { name: string } } }[];
    return link?.xdp?.prog?.name;
  };

  afterAll(async () => {
    await lab?.cleanup();
    // The pins outlive the agent by design (forwarding survives restarts): the test removes them, then the mount.
    for (const pin of [PIN, UNIT_PIN]) rmSync(join(BPFFS, pin), { recursive: true, force: true });
    spawnSync('umount', [BPFFS]);
    rmSync(BPFFS, { recursive: true, force: true });
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  // The second case starts from nothing (its own pins, no tc filter) with only the systemd unit's capabilities; the
  // third restarts over the first one's pins with the XDP fast path asked for.
  test.each([
    ['root', 'off', PIN, {}],
    ['the systemd unit', 'off', UNIT_PIN, {}],
    ['root', 'native', PIN, { xdp: 'native' }],
  ] as const)(
    'agent - driver bpf with the capabilities of %s (xdp %s) attaches to node.interface, pins under bpffsPath/%s and programs the VIP',
    async (caps, xdp, pin, option) => {
      if (caps !== 'root') await node.sh('tc qdisc del dev eth0 clsact');
      if (xdp === 'native') await node.sh('sysctl -qw net.ipv4.conf.eth0.forwarding=1');
      const config = {
        node: { name: 'n1', interface: 'eth0', address: NODE4 },
        bgp: { asn: 65001, peers: [{ address: '198.18.40.1', asn: 65000 }] },
        etcd: { endpoints: ['http://127.0.0.1:2379'] }, // unused: the store is given
        metrics: { listen: '127.0.0.1:0' },
        state: { enabled: false },
        dataplane: { driver: 'bpf', bpffsPath: BPFFS, pinName: pin, flowTableSize: 1024, ...option },
      };
      const fleet = {
        hashSeed: 7,
        pools: [
          {
            name: 'web',
            healthCheck: { type: 'none' },
            members: [{ name: 'be1', address: '198.18.41.10', port: 80 }],
          },
        ],
        vips: [{ address: VIP4, port: 80, protocol: 'tcp', pool: 'web', tableSize: 251 }],
      };
      const agent = spawnAgent(
        node,
        config,
        fleet,
        caps === 'root' ? [] : setprivAsUnit(unitFile('l4fleet-agent.service')),
      );
      const { child } = agent;

      // Bounded: 30 s, every 250 ms, until the VIP is in the pinned VIP map.
      const vips = join(BPFFS, pin, 'l4f_vips');
      let dump = '';
      const deadline = Date.now() + 30_000;
      for (let i = 0; i < 120 && Date.now() < deadline; i++) {
        if (existsSync(vips)) {
          dump = spawnSync('bpftool', ['-j', 'map', 'dump', 'pinned', vips], { encoding: 'utf8' }).stdout;
          if (dump.includes('"key"') && (xdp === 'off' || (await xdpProgram()) !== undefined)) break;
        }
        if (child.exitCode !== null) break;
        await new Promise((r) => setTimeout(r, 250));
      }
      expect(child.exitCode, agent.stderr()).toBeNull();
      expect(existsSync(vips), agent.stderr()).toBe(true);
      expect(JSON.parse(dump), agent.stderr()).toHaveLength(1);
      const tc = await node.sh('tc filter show dev eth0 ingress');
      expect(tc).toMatch(/bpf/);
      // agent.yaml's dataplane.xdp reached the loader: the XDP program is attached in native mode, or not at all.
      expect(await xdpProgram()).toBe(xdp === 'native' ? 'l4f_node_xdp' : undefined);

      await agent.stop();
      // close() leaves the program attached and the maps pinned: forwarding survives the agent (0007).
      expect(existsSync(vips)).toBe(true);
    },
    60_000,
  );
});
