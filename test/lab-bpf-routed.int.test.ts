/**
 * The lab scenarios with the eBPF data plane and routed backends (issue 14): backends on their own subnet behind the
 * router (`--backend-network routed`), so only encapsulated packets reach them, once per encapsulation (gue, ipip,
 * gre), each in its own lab. 3 nodes, 4 backends, long-lived TCP and UDP flows from the client; every step of
 * test/lab-e2e (add, drain, kill a node; add, fail a backend; etcd down 60 s), each printing its disruption table;
 * ipip and gre with fewer flows than gue.
 * Which node carries a flow: the lab's observe table in the router, on its port toward each node (on the node, a
 * bpf program at tc ingress takes the packets before any netfilter hook). Packet counts: the router's ports toward
 * the client, the nodes and the backends, read at one instant.
 * Waits read the router's route and the nodes' RIBs directly, never through `lab.status()` (5 s on a quiet VM, 14-17
 * s at load 14, over 30 s in CI: the CLI's start and every node's RIB, one after another); that is what failed "drain a node" and
 * "lab status" for ipip and gre in CI on 2026-12-02.
 * Needs root, the built CLI with the agent, and the bpf objects (`npm run build` with clang); otherwise skipped,
 * never faked. Run under the lab lock.
 */
import { DEFAULT_BFD_DETECT_MULTIPLIER, DEFAULT_BFD_INTERVAL_MS } from '@l4fleet/daemons';
import { bpfAvailable } from '@l4fleet/dataplane';
import {
  agentAvailable,
  announced,
  DEFAULT_BROKEN_AFTER_MS,
  downLab,
  FlowRun,
  hostsOfKind,
  Lab,
  type LabForwarding,
  VIP_TCP,
} from '@l4fleet/lab';
import { brokenIds, l4fleet, sleep, step } from '@l4fleet/test-support/lab-scenario';
import {
  addBackendStep,
  drainVipStep,
  failBackendStep,
  killNodeStep,
  leastFairShare,
  NEW_BACKEND_MIN_SHARE,
  NEW_NODE_FLOWS,
  nextHopsWithout,
  pingVipsStep,
} from '@l4fleet/test-support/lab-steps';
import { backendCounters, liveHosts, nodeRx, trafficWindow } from '@l4fleet/test-support/lab-traffic';
import { DRAIN_EXTRA_PAUSE_MS, DRAIN_MAX_PAUSE_MS, nodePauses } from '@l4fleet/test-support/node-pauses';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

const ready = (await agentAvailable()) && bpfAvailable() === undefined && process.getuid?.() === 0;
/** The lab fleet's health check (deploy/examples/lab-fleet.yaml): every 1 s, down after 3 failures. */
const HEALTH_INTERVAL_MS = 1_000;
const HEALTH_FALL = 3;
const WINDOW_MS = 3_000;

interface Mode {
  /** The encapsulations (every forwarding the backends decapsulate). */
  readonly forwarding: Extract<LabForwarding, 'gue' | 'ipip' | 'gre'>;
  readonly tcp: number;
  readonly udp: number;
}
const ALL_MODES: readonly Mode[] = [
  { forwarding: 'gue', tcp: 200, udp: 50 },
  { forwarding: 'ipip', tcp: 100, udp: 20 },
  { forwarding: 'gre', tcp: 100, udp: 20 },
];
/**
 * Every mode runs in every `npm test`. L4FLEET_TEST_LAB_ENCAP=gue,ipip (a comma list) narrows a run while debugging;
 * `all` or unset is every mode.
 */
function selectedModes(env: string | undefined): readonly Mode[] {
  if (env === undefined || env === '' || env === 'all') return ALL_MODES;
  const wanted = env.split(',').map((m) => m.trim());
  const unknown = wanted.filter((m) => !ALL_MODES.some((x) => x.forwarding === m));
  if (unknown.length > 0) {
    throw new Error(`L4FLEET_TEST_LAB_ENCAP "${env}": ${unknown.join(', ')} is not gue, ipip, gre or all`);
  }
  return ALL_MODES.filter((m) => wanted.includes(m.forwarding));
}
const MODES = selectedModes(process.env.L4FLEET_TEST_LAB_ENCAP);

describe.skipIf(!ready).sequential.each(MODES)('lab bpf + routed backends - $forwarding', (mode) => {
  const id = `b${mode.forwarding}${Math.random().toString(36).slice(2, 5)}`;
  const controlSlot = 100 + Math.floor(Math.random() * 150);
  let lab: Lab;
  let flows: FlowRun;

  const names = (kind: 'node' | 'backend') => liveHosts(lab, kind);
  const window = (ms = WINDOW_MS) => trafficWindow(lab, ms);

  /** What each live node's gobgpd announces (its RIB), read directly: without the rest of `lab.status()`. */
  const announcements = () => Promise.all(names('node').map(async (n) => [n, await announced(lab.ns(n))] as const));

  beforeAll(async () => {
    lab = await Lab.up({
      ...{ id, controlSlot, nodes: 3, backends: 4, mode: 'agent', readyTimeoutMs: 120_000 },
      // As `lab up` runs by default: a dead node leaves ECMP in ~300 ms, not the 3 s hold time.
      bfd: { intervalMs: DEFAULT_BFD_INTERVAL_MS, multiplier: DEFAULT_BFD_DETECT_MULTIPLIER },
      ...{ dataplane: 'bpf', backendNetwork: 'routed', forwarding: mode.forwarding },
    });
    flows = await FlowRun.start(lab, { tcpFlows: mode.tcp, udpFlows: mode.udp, openTimeoutMs: 60_000 });
  }, 240_000);

  afterAll(async () => {
    await flows?.stop();
    await downLab(id);
  }, 60_000);

  test('lab status: every node runs bpf; backends routed; the pools forward with the mode', async () => {
    const s = await lab.status();
    expect(s.dataPath).toEqual({ dataplane: 'bpf', backendNetwork: 'routed', forwarding: mode.forwarding });
    expect(s.nodes.map((n) => n.dataplane)).toEqual(['bpf', 'bpf', 'bpf']);
    for (const b of s.backends) expect(b.address).toMatch(/^198\.18\.3\./);
    // One status read took 5 s on a quiet VM and up to 30 s at load 14 (every node's RIB, BGP, BFD, the CLI).
  }, 120_000);

  test('replies do not pass through the nodes: nodes receive the requests only, backends send the replies', async () => {
    const w = await window();
    const rx = nodeRx(w);
    console.log(
      `${mode.forwarding} ${WINDOW_MS} ms: client tx ${w.client.txPackets} rx ${w.client.rxPackets} pkts; nodes rx ${rx}; backends rx ${w.backends.rxPackets} tx ${w.backends.txPackets}`,
    );
    expect(w.client.rxPackets).toBeGreaterThan(1_000);
    // Through the nodes, every reply would add one packet to the nodes' rx: they would see tx + rx of the client.
    // They see the client's requests plus their own control traffic (BGP, BFD, health checks, ARP: 1,718 packets in
    // 3 s in one gre run with 120 flows), well under half of the replies.
    expect(rx - w.client.txPackets).toBeLessThan(0.5 * w.client.rxPackets);
    // The replies leave the backends (straight to the router, DSR): at least what the client received.
    expect(w.backends.txPackets).toBeGreaterThanOrEqual(0.95 * w.client.rxPackets);
    // Every backend decapsulated this mode's packets from the nodes and dropped no stranger's.
    for (const [b, counters] of await backendCounters(lab, names('backend'))) {
      const decap = Object.values(counters.decapsulated[mode.forwarding]).reduce((a, p) => a + p.packets, 0);
      expect(decap, `${b} decapsulated ${mode.forwarding}`).toBeGreaterThan(0);
      expect(counters.droppedStranger.packets, `${b} dropped stranger`).toBe(0);
    }
  }, 150_000);

  test('ping: the client pings the VIP addresses, IPv4 and IPv6; a node answers each request from the VIP', async () => {
    await pingVipsStep(lab);
  }, 60_000);

  // Once, with gue (the lab's default): the kept table through the tc program, encapsulated; lab-e2e runs it on nftables.
  test.runIf(mode.forwarding === 'gue')(
    'drain a VIP: its open flows go on (0 broken), also those ECMP moves (node1 drained and back), a new connection gets no answer; enabled, it answers',
    async () => {
      await drainVipStep(lab, flows, 3);
    },
    150_000,
  );

  test('1. add a node: 0 flows broken; the new node carries its share of the packets and new flows (of 4, by chance >= 11.8%)', async () => {
    const before = brokenIds(flows);
    await flows.mark();
    const name = await lab.addNode();
    await lab.waitNextHops(4, 30_000);
    await flows.open(NEW_NODE_FLOWS, 0);
    const { s, broken } = await step(flows, `add ${name}`, before, 2_500);
    const w = await window();
    console.log(`add ${name}: ${name} rx ${w.nodes.get(name)?.rxPackets} of ${nodeRx(w)} node packets`);
    expect(broken).toEqual([]);
    // Every open flow sends one message per 50 ms tick, so the packets split about as the flows do.
    expect((w.nodes.get(name)?.rxPackets ?? 0) / nodeRx(w)).toBeGreaterThanOrEqual(leastFairShare(s.open, 1 / 4));
    // A moved flow that the new node dropped would stall rather than break (TCP retransmits; broken after
    // DEFAULT_BROKEN_AFTER_MS, 15 s): bound the pause too (91-391 ms measured in CI).
    expect(s.longestPauseMs).toBeLessThan(3_000);
    // The same seen by the lab's observe table (in the router, so a bpf node's tc program does not hide it).
    expect((s.newFlows.perNode[name] ?? 0) / s.newFlows.total).toBeGreaterThanOrEqual(
      leastFairShare(s.newFlows.total, 1 / 4),
    );
  }, 180_000);

  test('2. drain a node: 0 broken; the flows it moves pause <= 250 ms longer than the others, every flow < 3 s; it receives almost nothing afterwards', async () => {
    const before = brokenIds(flows);
    const carriedBefore = await flows.carriers();
    await flows.mark();
    const status = await lab.status();
    const node1 = status.nodes.find((n) => n.name === 'node1')?.address;
    expect(node1).toMatch(/^198\.18\./);
    expect(status.router.nextHops[`${VIP_TCP.address}/32`]).toContain(node1);
    await l4fleet(lab, 'node', 'drain', 'node1');
    const withdrawnMs = await nextHopsWithout(lab, node1 as string, 20_000);
    const { s, broken } = await step(flows, 'drain node1', before, 4_000);
    // As lab-e2e's drain: the moved flows against those that stayed put (node-pauses.ts says why; one run here paused
    // every flow 1,386 ms on the loaded 2-core VM, the lab's own stall, under DRAIN_MAX_PAUSE_MS).
    const p = nodePauses(flows, carriedBefore, 'node1');
    const w = await window();
    console.log(
      `drain node1: route withdrawn ${withdrawnMs} ms after the CLI returned; moved flows (${p.nodeFlows}) paused <= ${p.nodePauseMs} ms, the others <= ${p.othersPauseMs} ms, longest ${s.longestPauseMs} ms; node1 rx ${w.nodes.get('node1')?.rxPackets} of ${nodeRx(w)}`,
    );
    expect(broken).toEqual([]);
    expect(p.nodeFlows).toBeGreaterThan(0);
    expect(p.nodePauseMs).toBeLessThanOrEqual(p.othersPauseMs + DRAIN_EXTRA_PAUSE_MS);
    // ...and a cap on every flow's pause: a drain that stalls all flows alike passes the check above (node-pauses.ts).
    expect(s.longestPauseMs).toBeLessThan(DRAIN_MAX_PAUSE_MS);
    // What is left is its control traffic (BGP, BFD, health check answers, ARP), no flow.
    expect((w.nodes.get('node1')?.rxPackets ?? 0) / nodeRx(w)).toBeLessThan(0.05);
    expect(s.perNode.node1 ?? 0).toBe(0);
    await l4fleet(lab, 'node', 'undrain', 'node1');
    await lab.waitNextHops(4, 30_000);
  }, 180_000);

  test('3. kill a node: 0 broken; the router drops it within BFD (else the hold time) + its slack; each flow resumes by its next retransmission after', async () => {
    await killNodeStep(lab, flows, 'node2', 3);
  }, 60_000);

  test(`4. add a backend: 0 existing flows broken (affinity); >= ${NEW_BACKEND_MIN_SHARE * 100}% of new flows go to it`, async () => {
    await addBackendStep(lab, flows, HEALTH_INTERVAL_MS * 2 + 2_000);
  }, 240_000);

  test('5. fail a backend: only its flows break; decided down within interval x fall + timeout, every node applies within 1 s, no new flow reaches it after', async () => {
    await failBackendStep(lab, flows, 'backend3', HEALTH_INTERVAL_MS * HEALTH_FALL + 1_000, names('node'));
  }, 120_000);

  test('6. etcd down for 60 s: 0 broken, announcements unchanged', async () => {
    const before = brokenIds(flows);
    const announcedBefore = await announcements();
    await flows.mark();
    await lab.stopEtcd();
    await sleep(Math.max(60_000, DEFAULT_BROKEN_AFTER_MS + 1_000));
    const { broken } = await step(flows, 'etcd down 60 s', before, 0);
    const announcedAfter = await announcements();
    await lab.startEtcd();
    expect(broken).toEqual([]);
    expect(announcedAfter).toEqual(announcedBefore);
  }, 150_000);

  test('7. after every step, no backend dropped a packet of the fleet: none from a stranger, malformed, not to a VIP', async () => {
    // backend3 (failed: its processes are gone, its decapsulator still runs) and backend5 (added) included.
    const all = hostsOfKind(lab.topology, 'backend').map((h) => h.name);
    const dropped = (await backendCounters(lab, all)).map(([b, c]) => ({
      backend: b,
      decapsulated: Object.values(c.decapsulated[mode.forwarding]).reduce((a, p) => a + p.packets, 0),
      stranger: c.droppedStranger.packets,
      malformed: c.malformed.packets,
      notVip: c.droppedNotVip.packets,
      decapFailed: c.decapFailed.packets,
    }));
    console.log(`${mode.forwarding} backends after every step: ${JSON.stringify(dropped)}`);
    for (const d of dropped) {
      expect(d.decapsulated, `${d.backend} decapsulated`).toBeGreaterThan(0);
      expect([d.stranger, d.malformed, d.notVip, d.decapFailed], `${d.backend} dropped`).toEqual([0, 0, 0, 0]);
    }
  }, 150_000);
});
