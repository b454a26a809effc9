/**
 * Kill a node with BFD (RFC 5880/5881): the netns lab with the real agent, FRR bfdd on the router (bgpd neighbours
 * with `bfd profile`) and a standalone bfdd on every node, 100 ms x 3. With flows running, a node's link goes down
 * and all its processes get SIGKILL (`lab kill`): the router's BFD session times out in ~300 ms and bgpd drops the
 * node's routes (0.4-0.6 s after the kill began) instead of at the 3 s hold time, so the flows ECMP had sent to it
 * resume at their next TCP retransmission after that (0.7-0.8 s measured; bounds in test/support/lab-kill.ts).
 * Needs root and the built CLI with the `agent` command; without the agent the suite is skipped, never faked. The lab
 * is removed even when a step fails (afterAll).
 */
import { bpfAvailable, DEFAULT_BACKEND_OBJECT } from '@l4fleet/dataplane';
import { agentAvailable, DEFAULT_DATA_PATH, downLab, FlowRun, Lab, NFTABLES_DATA_PATH, VIP_TCP } from '@l4fleet/lab';
import { BFD_REACTION_MS, bfdTimersUp, killAndMeasure, routerBfdTimers } from '@l4fleet/test-support/lab-kill';
import { sleep } from '@l4fleet/test-support/lab-scenario';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

const agentReady = await agentAvailable();
const id = `b${Math.random().toString(36).slice(2, 8)}`;
const controlSlot = 100 + Math.floor(Math.random() * 150);
const BFD = { intervalMs: 100, multiplier: 3 };
const bpfMissing = bpfAvailable() ?? bpfAvailable({ objectPath: DEFAULT_BACKEND_OBJECT });
const expectedPath = bpfMissing === undefined ? DEFAULT_DATA_PATH : NFTABLES_DATA_PATH;

let lab: Lab;
let flows: FlowRun;

/** Waits until the router's BFD session to every listed node is in `state`; returns the lab status. */
async function waitBfd(names: readonly string[], state: string, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  let last: Record<string, string | null> = {};
  while (Date.now() < deadline) {
    const s = await lab.status();
    last = Object.fromEntries(s.nodes.map((n) => [n.name, n.bfd]));
    if (names.every((n) => last[n] === state)) return s;
    await sleep(100);
  }
  throw new Error(`BFD not ${state} on ${names.join(', ')} after ${timeoutMs} ms: ${JSON.stringify(last)}`);
}

describe.skipIf(!agentReady || process.getuid?.() !== 0).sequential(`lab bfd - kill a node (lab ${id})`, () => {
  beforeAll(async () => {
    lab = await Lab.up({ id, controlSlot, nodes: 3, backends: 4, mode: 'agent', bfd: BFD, readyTimeoutMs: 90_000 });
    flows = await FlowRun.start(lab, { tcpFlows: 150, udpFlows: 0, openTimeoutMs: 60_000 });
  }, 180_000);

  afterAll(async () => {
    await flows?.stop();
    await downLab(id);
  }, 60_000);

  test('lab status shows the router BFD session of every node up', async () => {
    const s = await waitBfd(['node1', 'node2', 'node3'], 'up', 15_000);
    // The lab's default data path (bpf + routed + gue where the bpf objects are built; issue 14).
    expect(s.dataPath).toEqual(expectedPath);
    expect(s.nodes.map((n) => n.bgp)).toEqual(['Established', 'Established', 'Established']);
    expect(s.router.nextHops[`${VIP_TCP.address}/32`]).toHaveLength(3);
  }, 30_000);

  test("kill a node: the router's BFD timers 100 ms x 3; 0 broken; the router drops it <= 1 s (BFD 0.3 s + 0.7 s); longest pause <= 2 x drop + 0.5 s; its BFD session goes down", async () => {
    // The drop bound is built on the detection time the lab configures: the router's sessions must run it (a BFD at
    // 200 ms x 3 detects in 600 ms, and 600 ms + its reaction passed the 1 s bound).
    const timers = await routerBfdTimers(lab, ['node1', 'node2', 'node3']);
    console.log(`the router's BFD timers per node: ${JSON.stringify(timers)}`);
    expect(timers).toEqual({ node1: bfdTimersUp(BFD), node2: bfdTimersUp(BFD), node3: bfdTimersUp(BFD) });
    const k = await killAndMeasure(lab, flows, 'node2', 2, {
      name: 'kill node2 (BFD 100 ms x 3)',
      timeoutMs: 10_000,
      settleMs: 2_000,
    });
    expect(k.broken).toEqual([]);
    // The hold timer (3 s) would fail this: only BFD drops the node within it.
    expect(k.dropBoundMs).toBe(BFD.intervalMs * BFD.multiplier + BFD_REACTION_MS);
    expect(k.dropMs).toBeLessThanOrEqual(k.dropBoundMs);
    expect(k.s.longestPauseMs).toBeLessThanOrEqual(k.pauseBoundMs);
    const after = await lab.status();
    expect(after.nodes.find((n) => n.name === 'node2')?.bfd).toBe('down');
    expect(after.nodes.find((n) => n.name === 'node1')?.bfd).toBe('up');
  }, 60_000);

  test('restart the node: its BFD session and its route come back', async () => {
    await lab.restart('node2', 60_000);
    await waitBfd(['node2'], 'up', 15_000);
    await lab.waitNextHops(3, 15_000);
  }, 90_000);
});
