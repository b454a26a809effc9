/**
 * The agent's periodic data-plane verify (dataplane.verifyIntervalS) against the real kernel: an agent process in a
 * network namespace (spawnAgent: memory store, fake speaker) programs a VIP with the bpf or the nftables driver; the
 * data plane is then removed behind it by hand (`tc qdisc del dev eth0 clsact`, or the VIP's element deleted from
 * the netdev table's vips4 map), as an operator or another program would. No table changes after that, so only the
 * verify can put it back: within a few intervals of 1 s the kernel shows it again, /metrics counts the repair
 * (l4fleet_table_drift_repairs_total) and the log says dataPlaneDriftRepaired. The drivers' verify alone is
 * test/dataplane/bpf-restart's and nftables' (same kernel checks, called directly); the schedule alone is the
 * reconciler's unit tests (fake clock, fake data plane). Run under the ns lock.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parsePrometheusText } from '@l4fleet/dashboard';
import { bpfAvailable } from '@l4fleet/dataplane';
import { type AgentProcess, spawnAgent } from '@l4fleet/test-support/agent-process';
import { eventually } from '@l4fleet/test-support/eventually';
import { createNetnsLab, type NetnsHost, type NetnsLab } from '@l4fleet/test-support/netns';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';

const BPFFS = `/run/l4fleet-agent-verify-${process.pid}`;
const PIN = 'agentverify';
const ROUTER4 = '198.18.44.1';
const NODE4 = '198.18.44.2';
const VIP4 = '198.51.100.44';
/** Each node is its own namespace, so its agent's /metrics can listen on a fixed port (read from inside it). */
const METRICS = '127.0.0.1:9469';
/** The smallest interval agent.yaml takes (0 is off). */
const VERIFY_INTERVAL_S = 1;
/** Bounds of the waits: the agent's start (tsx from source, the first apply), then the repair (a few intervals). */
const APPLIED_MS = 30_000;
const REPAIRED_MS = 20_000;

const bpfBuilt = bpfAvailable() === undefined;

const fleet = {
  hashSeed: 7,
  pools: [
    { name: 'web', healthCheck: { type: 'none' }, members: [{ name: 'be1', address: '198.18.45.10', port: 80 }] },
  ],
  vips: [{ address: VIP4, port: 80, protocol: 'tcp', pool: 'web', tableSize: 251 }],
};

const agentYaml = (dataplane: Record<string, unknown>) => ({
  node: { name: 'n1', interface: 'eth0', address: NODE4 },
  bgp: { asn: 65001, peers: [{ address: ROUTER4, asn: 65000 }] },
  etcd: { endpoints: ['http://127.0.0.1:2379'] }, // unused: the store is given
  metrics: { listen: METRICS },
  state: { enabled: false },
  dataplane: { ...dataplane, verifyIntervalS: VERIFY_INTERVAL_S },
});

describe('agent - the periodic data-plane verify repairs what was removed by hand', () => {
  let lab: NetnsLab;
  let router: NetnsHost;
  let agent: AgentProcess | undefined;
  let links = 0;

  beforeAll(async () => {
    // Mounted here, before the agent (test/agent-bpf.int.test.ts says why: `ip netns exec` hides the agent's mounts).
    if (bpfBuilt) {
      mkdirSync(BPFFS, { recursive: true });
      expect(spawnSync('mount', ['-t', 'bpf', 'bpf', BPFFS]).status).toBe(0);
    }
    lab = await createNetnsLab('l4av');
    router = await lab.host('rtr');
  });

  afterEach(async () => {
    await agent?.stop();
    agent = undefined;
  });

  afterAll(async () => {
    await lab?.cleanup();
    // The pins outlive the agent by design (forwarding survives restarts): the test removes them, then the mount.
    if (bpfBuilt) {
      rmSync(join(BPFFS, PIN), { recursive: true, force: true });
      spawnSync('umount', [BPFFS]);
      rmSync(BPFFS, { recursive: true, force: true });
    }
  });

  /** A fresh node namespace, linked to the router by a veth of its own, with the node address on its eth0. */
  const freshNode = async (role: string): Promise<NetnsHost> => {
    const node = await lab.host(role);
    const routerIf = `eth${links++}`;
    await lab.veth(node, 'eth0', router, routerIf);
    await node.addr('eth0', `${NODE4}/24`);
    return node;
  };

  /** The agent's l4fleet_table_drift_repairs_total, read from inside its namespace. */
  const driftRepairs = async (node: NetnsHost): Promise<number> => {
    const text = await node.sh(`curl -sf http://${METRICS}/metrics`);
    const sample = parsePrometheusText(text).find((s) => s.name === 'l4fleet_table_drift_repairs_total');
    if (sample === undefined) throw new Error('no l4fleet_table_drift_repairs_total in /metrics');
    return sample.value;
  };

  /** Starts the agent on `node` and waits until `programmed` says its first apply reached the kernel. */
  const startAndApply = async (
    node: NetnsHost,
    dataplane: Record<string, unknown>,
    programmed: () => Promise<boolean>,
  ) => {
    const started = spawnAgent(node, agentYaml(dataplane), fleet);
    agent = started;
    await eventually(
      'the agent applied its first table',
      async () => started.child.exitCode === null && (await programmed()),
      (ok) => ok,
      APPLIED_MS,
      250,
    ).catch((err: unknown) => {
      throw new Error(`${String(err)}\nagent stderr:\n${started.stderr()}`);
    });
    // Nothing has drifted yet: a repair counted from here on is the hand edit's.
    expect(await driftRepairs(node), started.stderr()).toBe(0);
    return started;
  };

  /** Waits until the agent counted a repair and `programmed` says the kernel has it again. */
  const repaired = async (node: NetnsHost, started: AgentProcess, programmed: () => Promise<boolean>) => {
    await eventually(
      'the verify repaired the hand edit',
      async () => ({ repairs: await driftRepairs(node), programmed: await programmed() }),
      (s) => s.repairs >= 1 && s.programmed,
      REPAIRED_MS,
      250,
    ).catch((err: unknown) => {
      throw new Error(`${String(err)}\nagent stderr:\n${started.stderr()}`);
    });
    expect(started.child.exitCode).toBeNull();
    expect(started.stderr()).toContain('"event":"dataPlaneDriftRepaired"');
    expect(started.stderr()).toContain(VIP4);
  };

  test.skipIf(!bpfBuilt)(
    'agent - verify, driver bpf: tc qdisc del dev eth0 clsact by hand; within 20 s the program is attached again and l4fleet_table_drift_repairs_total >= 1',
    async () => {
      const node = await freshNode('bpf');
      const attached = async () =>
        (await node.run(['tc', 'filter', 'show', 'dev', 'eth0', 'ingress'], { allowFailure: true })).stdout.includes(
          'l4f_node',
        );
      const started = await startAndApply(
        node,
        { driver: 'bpf', bpffsPath: BPFFS, pinName: PIN, flowTableSize: 1024 },
        attached,
      );

      await node.run(['tc', 'qdisc', 'del', 'dev', 'eth0', 'clsact']);
      expect(await attached()).toBe(false);
      // The program alone coming back proves little: a /metrics scrape's counters read finds it detached and its new
      // loader attaches it (with verifyIntervalS 0 too). The driver leaves that re-attach for the next verify to
      // report, so the repair counted is what shows the verify ran.

      await repaired(node, started, attached);
    },
    60_000,
  );

  test('agent - verify, driver nftables: the VIP element deleted from vips4 by hand; within 20 s it is back and l4fleet_table_drift_repairs_total >= 1', async () => {
    const node = await freshNode('nft');
    const listed = async () =>
      (await node.run(['nft', 'list', 'map', 'netdev', 'l4fleet', 'vips4'], { allowFailure: true })).stdout.includes(
        `${VIP4} . tcp . 80 : jump`,
      );
    const started = await startAndApply(node, { driver: 'nftables' }, listed);

    await node.run(['nft', 'delete', 'element', 'netdev', 'l4fleet', 'vips4', `{ ${VIP4} . tcp . 80 }`]);
    expect(await listed()).toBe(false);

    await repaired(node, started, listed);
  }, 60_000);
});
