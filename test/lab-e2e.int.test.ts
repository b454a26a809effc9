/**
 * The end-to-end scenarios on the netns lab with the real agent and the nftables data plane (pinned: the lab's
 * default is bpf + routed + gue since issue 14, test/lab-bpf-routed.int.test.ts): 3 nodes, 4 backends, 200 long-lived TCP
 * flows and 50 UDP flows from the client; each step prints its disruption table. Needs root and the built CLI with
 * the `agent` command (`npm run build`); without the agent the suite is skipped, never faked.
 */
import { agentAvailable, DEFAULT_BROKEN_AFTER_MS, downLab, FlowRun, Lab, VIP_TCP, VIP_UDP } from '@l4fleet/lab';
import { brokenIds, l4fleet, sleep, step } from '@l4fleet/test-support/lab-scenario';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

const agentReady = await agentAvailable();
const id = `e${Math.random().toString(36).slice(2, 8)}`;
const controlSlot = 100 + Math.floor(Math.random() * 150);
/** The lab fleet's health check (deploy/examples/lab-fleet.yaml): every 1 s, down after 3 failures. */
const HEALTH_INTERVAL_MS = 1_000;
const HEALTH_FALL = 3;

let lab: Lab;
let flows: FlowRun;

async function nextHopsWithout(address: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const hops = (await lab.status()).router.nextHops[`${VIP_TCP.address}/32`] ?? [];
    if (hops.length > 0 && !hops.includes(address)) return;
    await sleep(100);
  }
  throw new Error(`router still routes ${VIP_TCP.address} via ${address} after ${timeoutMs} ms`);
}

describe.skipIf(!agentReady || process.getuid?.() !== 0).sequential(`lab e2e - the issue scenarios (lab ${id})`, () => {
  beforeAll(async () => {
    // nftables explicitly: the lab's default is bpf + routed + gue (issue 14), whose scenarios
    // test/lab-bpf-routed.int.test.ts runs; this file keeps nftables' end-to-end test.
    lab = await Lab.up({
      ...{ id, controlSlot, nodes: 3, backends: 4, mode: 'agent', readyTimeoutMs: 90_000 },
      dataplane: 'nftables',
    });
    flows = await FlowRun.start(lab, { tcpFlows: 200, udpFlows: 50, openTimeoutMs: 60_000 });
  }, 180_000);

  afterAll(async () => {
    await flows?.stop();
    await downLab(id);
  }, 60_000);

  test('explain flow predicts the backend of every sampled flow', async () => {
    const sample = flows.report.flows.filter((f) => f.state === 'open').filter((_, i) => i % 10 === 0);
    expect(sample.length).toBeGreaterThanOrEqual(20);
    for (const f of sample) {
      const vip = f.protocol === 'tcp' ? VIP_TCP : VIP_UDP;
      const out = await l4fleet(
        lab,
        'explain',
        'flow',
        `${f.localAddress}:${f.localPort}`,
        `${vip.address}:${vip.port}/${vip.protocol}`,
        '-o',
        'json',
      );
      expect(JSON.parse(out).backend, `${f.protocol} flow from port ${f.localPort}`).toBe(f.backend);
    }
  }, 120_000);

  test('1. add a node: 0 flows broken; the new node carries >= 15% of new flows', async () => {
    const before = brokenIds(flows);
    await flows.mark();
    const name = await lab.addNode();
    await lab.waitNextHops(4, 30_000);
    await flows.open(200, 0);
    const { s, broken } = await step(flows, `add ${name}`, before, 2_500);
    expect(broken).toEqual([]);
    expect((s.newFlows.perNode[name] ?? 0) / s.newFlows.total).toBeGreaterThanOrEqual(0.15);
  }, 120_000);

  test('2. drain a node: 0 broken; longest pause <= 250 ms; it carries no flows afterwards', async () => {
    const before = brokenIds(flows);
    await flows.mark();
    // node1's address from the lab, not written here: a stale literal would match no next hop and pass at once.
    const node1 = (await lab.status()).nodes.find((n) => n.name === 'node1')?.address;
    expect(node1).toMatch(/^198\.18\./);
    expect((await lab.status()).router.nextHops[`${VIP_TCP.address}/32`]).toContain(node1);
    await l4fleet(lab, 'node', 'drain', 'node1');
    await nextHopsWithout(node1 as string, 20_000);
    const { s, broken } = await step(flows, 'drain node1', before, 4_000);
    expect(broken).toEqual([]);
    expect(s.longestPauseMs).toBeLessThanOrEqual(250);
    expect(s.perNode.node1 ?? 0).toBe(0);
    expect((await lab.status()).nodes.find((n) => n.name === 'node1')?.announced).toEqual([]);
    await l4fleet(lab, 'node', 'undrain', 'node1');
    await lab.waitNextHops(4, 30_000);
  }, 120_000);

  test('3. kill a node: 0 broken; longest pause <= 4 s (hold timer)', async () => {
    const before = brokenIds(flows);
    await flows.mark();
    await lab.kill('node2');
    await lab.waitNextHops(3, 15_000);
    const { s, broken } = await step(flows, 'kill node2', before, 2_000);
    expect(broken).toEqual([]);
    expect(s.longestPauseMs).toBeLessThanOrEqual(4_000);
  }, 60_000);

  test('4. add a backend: 0 existing flows broken (affinity); >= 15% of new flows go to it', async () => {
    const before = brokenIds(flows);
    await flows.mark();
    const name = await lab.addBackend();
    const address = lab.topology.segments
      .find((x) => x.name === 'fabric')
      ?.attachments.find((a) => a.host === name)?.ipv4;
    await l4fleet(lab, 'member', 'add', 'web', `${address}:${VIP_TCP.port}`, '--name', name);
    // rise 2 x interval 1 s, plus the tables reaching every node
    await sleep(HEALTH_INTERVAL_MS * 2 + 2_000);
    await flows.open(300, 0);
    const { s, broken } = await step(flows, `add ${name}`, before, 2_000);
    expect(broken).toEqual([]);
    expect((s.newFlows.perBackend[name] ?? 0) / s.newFlows.total).toBeGreaterThanOrEqual(0.15);
  }, 120_000);

  test('5. fail a backend: only its flows break; its share moves to the others within interval x fall + 1 s', async () => {
    const before = brokenIds(flows);
    const existing = new Set(flows.report.flows.map((f) => f.id));
    const victims = new Set(
      flows.report.flows.filter((f) => f.state === 'open' && f.backend === 'backend3').map((f) => f.id),
    );
    expect(victims.size).toBeGreaterThan(0);
    const boundMs = HEALTH_INTERVAL_MS * HEALTH_FALL + 1_000;
    await flows.mark();
    const failedAt = Date.now();
    await lab.failBackend('backend3');
    // Probe: a few new flows every 250 ms; the last batch that still reached backend3 (answered by it, or reset by
    // its dead port) says when its share had moved.
    let lastHitMs = 0;
    for (let i = 0; i < 80; i++) {
      const elapsed = Date.now() - failedAt;
      if (elapsed > Math.max(boundMs, lastHitMs) + 2_000) break;
      const from = flows.report.flows.length;
      await flows.open(4, 0, 10_000);
      const batch = flows.report.flows.slice(from);
      if (batch.some((f) => f.backend === 'backend3' || (f.state === 'broken' && f.backend === undefined))) {
        lastHitMs = elapsed;
      }
      await sleep(250);
    }
    // The failed backend's own flows: TCP is reset by its dead port, UDP stays on it (affinity) until the timeout.
    const deadline = Date.now() + DEFAULT_BROKEN_AFTER_MS + 5_000;
    while (Date.now() < deadline && ![...victims].every((v) => brokenIds(flows).has(v))) await sleep(250);
    const { broken } = await step(flows, `fail backend3 (new flows reached it until ${lastHitMs} ms)`, before, 0);
    console.log(`fail backend3: share moved after <= ${lastHitMs} ms (bound ${boundMs} ms); victims ${victims.size}`);
    expect(broken.filter((i) => existing.has(i) && !victims.has(i))).toEqual([]);
    expect([...victims].filter((v) => !brokenIds(flows).has(v))).toEqual([]);
    expect(lastHitMs).toBeLessThanOrEqual(boundMs);
  }, 120_000);

  test('6. etcd down for 60 s: 0 broken, announcements unchanged', async () => {
    const before = brokenIds(flows);
    const announced = (await lab.status()).nodes.map((n) => [n.name, n.announced]);
    await flows.mark();
    await lab.stopEtcd();
    // Longer than the flows' own broken-after timeout, so a silent stall would show up as broken flows.
    await sleep(Math.max(60_000, DEFAULT_BROKEN_AFTER_MS + 1_000));
    const { broken } = await step(flows, 'etcd down 60 s', before, 0);
    const after = (await lab.status()).nodes.map((n) => [n.name, n.announced]);
    await lab.startEtcd();
    expect(broken).toEqual([]);
    expect(after).toEqual(announced);
  }, 150_000);
});
