/**
 * Issue 16's faults on the Docker runtime: every lab host a container (the images of deploy/docker/build-images.sh),
 * a three-member etcd in the control container, BFD 100 ms x 3 between the router's bfdd (beside bgpd) and a bfdd in
 * every node container. With 100 TCP + 10 UDP long-lived flows running, a node container is killed (link down,
 * every process SIGKILLed) and then an etcd member; each step prints its disruption table.
 * Collected only with L4FLEET_TEST_RUNTIME=containers (scripts/test.sh's second vitest run, which brings its own
 * Docker engine and the images): there a missing engine or image fails the file, it is never skipped. The lab's
 * containers and namespaces are removed even when a step fails (afterAll: `downLab`).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { frrPaths, vtysh } from '@l4fleet/daemons';
import { DEFAULT_STATE_ROOT, downLab, FlowRun, hostsOfKind, Lab, labFleet, VIP_TCP } from '@l4fleet/lab';
import {
  BFD_REACTION_MS,
  bfdTimersUp,
  killAndMeasure,
  QUIET_EXTRA_PAUSE_MS,
  quietPauseBoundMs,
  routerBfdTimers,
} from '@l4fleet/test-support/lab-kill';
import {
  agentMetrics,
  brokenIds,
  failStaticEntries,
  l4fleetRun,
  sleep,
  step,
} from '@l4fleet/test-support/lab-scenario';
import { downDockerLabAndExpectGone } from '@l4fleet/test-support/lab-steps';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

const id = `x${Math.random().toString(36).slice(2, 8)}`;
const controlSlot = 100 + Math.floor(Math.random() * 150);
const BFD = { intervalMs: 100, multiplier: 3 };
/**
 * The etcd member step's window (kill, `lab status`, the apply through the other members, 3 s after it), and as long
 * the quiet window measured just before it: the longest pause grows with the window on a starved CPU.
 */
const ETCD_STEP_WINDOW_MS = 10_000;

let lab: Lab;
let flows: FlowRun | undefined;

/** Waits until the router has every listed node's BGP session Established and its BFD session up; returns the status. */
async function waitSessionsUp(names: readonly string[], timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  let last: Record<string, string> = {};
  while (Date.now() < deadline) {
    const s = await lab.status();
    last = Object.fromEntries(s.nodes.map((n) => [n.name, `bgp ${n.bgp}, bfd ${n.bfd}`]));
    if (names.every((n) => last[n] === 'bgp Established, bfd up')) return s;
    await sleep(100);
  }
  throw new Error(`sessions not up on ${names.join(', ')} after ${timeoutMs} ms: ${JSON.stringify(last)}`);
}

/**
 * How often the router's BFD session to each node went down since up (FRR `show bfd peers counters json`,
 * `session-down`): a surviving node's count above 0 means BFD flapped (e.g. 100 ms x 3 on a starved CPU), which also
 * resets its BGP session. Printed with the kill step, so a long pause can be told from a flap.
 */
async function bfdDownCounts(): Promise<Record<string, number | undefined>> {
  const vtyDir = frrPaths(join(process.env.L4FLEET_LAB_STATE_DIR ?? DEFAULT_STATE_ROOT, id, 'router')).vtyDir;
  const out = await vtysh(lab.ns('router'), vtyDir, 'show bfd peers counters json');
  const peers = JSON.parse(out) as { peer?: string; 'session-down'?: number }[];
  const fabric = lab.topology.segments.find((seg) => seg.name === 'fabric')?.attachments ?? [];
  const downs = (node: string) => peers.find((p) => p.peer === fabric.find((a) => a.host === node)?.ipv4);
  return Object.fromEntries(hostsOfKind(lab.topology, 'node').map((n) => [n.name, downs(n.name)?.['session-down']]));
}

/** The agent's view of its bfdd in `node`'s container (metrics on the node's control address). */
async function agentBfd(node: string): Promise<{ reachable: boolean; sessionUp: boolean }> {
  const text = await agentMetrics(lab, node);
  return {
    // The agent's registry adds node and fleet labels to every metric.
    reachable: /^l4fleet_bfdd_reachable(\{[^}]*\})? 1$/m.test(text),
    sessionUp: /^l4fleet_bfd_session_up\{[^}]*\} 1$/m.test(text),
  };
}

/** Whether the etcd member at `endpoint` answers its health check (from the host, over the control network). */
async function memberHealthy(endpoint: string): Promise<boolean> {
  try {
    const r = await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(2_000) });
    return r.ok && ((await r.json()) as { health?: string }).health === 'true';
  } catch {
    return false;
  }
}

/** A real write (the web pool's health check timeout) that changes no table and no announcement. */
function writeFleet(timeoutMs: number): string {
  const fleet = labFleet(lab.topology) as { pools: { name: string; healthCheck: { timeoutMs: number } }[] };
  const web = fleet.pools.find((p) => p.name === VIP_TCP.name);
  if (!web) throw new Error(`the lab fleet has no pool "${VIP_TCP.name}"`);
  web.healthCheck.timeoutMs = timeoutMs;
  const file = join(lab.hostDir('control'), `fleet-${timeoutMs}.json`);
  writeFileSync(file, JSON.stringify(fleet));
  return file;
}

describe.sequential(`lab docker faults - BFD and a three-member etcd in containers (lab ${id})`, () => {
  beforeAll(async () => {
    lab = await Lab.up({
      id,
      controlSlot,
      nodes: 3,
      backends: 4,
      runtime: 'docker',
      // nftables on Docker keeps its coverage here; test/lab-docker runs the default (bpf, routed, gue).
      dataplane: 'nftables',
      etcdMembers: 3,
      bfd: BFD,
      readyTimeoutMs: 90_000,
    });
    flows = await FlowRun.start(lab, { tcpFlows: 100, udpFlows: 10, openTimeoutMs: 60_000 });
  }, 180_000);

  afterAll(async () => {
    await flows?.stop();
    await downLab(id);
  }, 60_000);

  test('lab status: three etcd members by name, every node Established with its BFD session up', async () => {
    await waitSessionsUp(['node1', 'node2', 'node3'], 20_000);
    // A session that flapped while the lab came up is Established again before its routes are back: wait for them.
    await lab.waitNextHops(3, 20_000);
    const s = await lab.status();
    expect(s.runtime).toBe('docker');
    expect(s.etcd.members.map((m) => m.name)).toEqual(['etcd1', 'etcd2', 'etcd3']);
    expect(s.etcd.endpoints).toHaveLength(3);
    for (const m of s.etcd.members) expect(await memberHealthy(m.endpoint)).toBe(true);
    expect(s.router.nextHops[`${VIP_TCP.address}/32`]).toHaveLength(3);
  }, 30_000);

  test("every node's agent reaches the bfdd in its container and sees its session up", async () => {
    const deadline = Date.now() + 20_000;
    let views: Record<string, unknown> = {};
    while (Date.now() < deadline) {
      views = {};
      for (const n of ['node1', 'node2', 'node3']) views[n] = await agentBfd(n).catch((err: Error) => err.message);
      if (Object.values(views).every((v) => JSON.stringify(v) === '{"reachable":true,"sessionUp":true}')) break;
      await sleep(500);
    }
    expect(views).toEqual(
      Object.fromEntries(['node1', 'node2', 'node3'].map((n) => [n, { reachable: true, sessionUp: true }])),
    );
  }, 30_000);

  test("kill a node container: the router's BFD timers 100 ms x 3, 0 broken, the router drops it <= 1 s (BFD 0.3 s + 0.7 s), longest pause <= 2 x drop + 0.5 s, its BFD session down", async () => {
    if (!flows) throw new Error('no flows');
    // The kill is measured from a settled fleet: every session up and in the route (a flap before the step, e.g. BFD
    // 100 ms x 3 on a starved CPU, would otherwise be counted as the kill's pause).
    await waitSessionsUp(['node1', 'node2', 'node3'], 20_000);
    await lab.waitNextHops(3, 20_000);
    // The drop bound is built on the detection time the lab configures: the router's sessions must run it (a BFD at
    // 200 ms x 3 detects in 600 ms, and 600 ms + its reaction passed the 1 s bound).
    const timers = await routerBfdTimers(lab, ['node1', 'node2', 'node3']);
    console.log(`docker: the router's BFD timers per node: ${JSON.stringify(timers)}`);
    expect(timers).toEqual({ node1: bfdTimersUp(BFD), node2: bfdTimersUp(BFD), node3: bfdTimersUp(BFD) });
    const k = await killAndMeasure(lab, flows, 'node2', 2, {
      name: 'docker: kill node2 (BFD 100 ms x 3)',
      timeoutMs: 10_000,
      settleMs: 2_000,
    });
    console.log(`docker: router BFD session-down counts ${JSON.stringify(await bfdDownCounts())}`);
    expect(k.broken).toEqual([]);
    // The hold timer (3 s) would fail this: only BFD drops the node within it.
    expect(k.dropBoundMs).toBe(BFD.intervalMs * BFD.multiplier + BFD_REACTION_MS);
    expect(k.dropMs).toBeLessThanOrEqual(k.dropBoundMs);
    expect(k.s.longestPauseMs).toBeLessThanOrEqual(k.pauseBoundMs);
    const after = await lab.status();
    expect(after.nodes.find((n) => n.name === 'node2')?.bfd).toBe('down');
    expect(after.nodes.find((n) => n.name === 'node1')?.bfd).toBe('up');
  }, 60_000);

  test('kill etcd member etcd1: 0 broken, no pause longer than in a quiet window before (+ 0.5 s, at most 3 s), apply still works; restart: it answers again', async () => {
    if (!flows) throw new Error('no flows');
    const etcd1 = lab.topology.control.etcdMembers.find((m) => m.name === 'etcd1');
    if (!etcd1) throw new Error('no etcd1');
    const before = brokenIds(flows);
    // node2 was killed by the step before.
    const running = ['node1', 'node3'];
    const entries = await failStaticEntries(lab, running);
    // No data-plane event happens when an etcd member dies: a pause in the step is the lab starved of CPU (0.9-1.0 s
    // seen at load 10-16), which the same window just before, with nothing happening, measures too.
    await flows.mark();
    await sleep(ETCD_STEP_WINDOW_MS);
    const quiet = await flows.summary();
    await flows.mark();
    const marked = Date.now();
    // etcd1 is every client's first endpoint: the agents and the CLI must fail over to another member.
    await lab.kill('etcd1');
    expect((await lab.status()).etcd.members.find((m) => m.name === 'etcd1')?.killed).toBe(true);
    expect(await memberHealthy(etcd1.clientUrl)).toBe(false);
    const t0 = Date.now();
    const applied = await l4fleetRun(lab, ['apply', '-f', writeFleet(600)], { allowFailure: true });
    console.log(`docker: kill etcd1: apply took ${Date.now() - t0} ms (exit ${applied.code})`);
    expect(applied.code, applied.stderr).toBe(0);
    // At least 3 s after the apply, and the window as long as the quiet one (longer when the step took longer).
    const settleMs = Math.max(3_000, marked + ETCD_STEP_WINDOW_MS - Date.now());
    const { s, broken } = await step(flows, 'docker: kill etcd1 (1 of 3)', before, settleMs);
    // The quiet window's pause + 500 ms, capped at 3 s: a quiet window that stalled 3 s itself must not let a 3.4 s
    // stall of the step pass (lab-kill.ts, quietPauseBoundMs).
    const pauseBoundMs = quietPauseBoundMs(quiet.longestPauseMs);
    console.log(
      `docker: kill etcd1: longest pause ${s.longestPauseMs} ms over ${Date.now() - marked} ms; in the quiet ` +
        `${ETCD_STEP_WINDOW_MS} ms before ${quiet.longestPauseMs} ms (bound: that + ${QUIET_EXTRA_PAUSE_MS}, at ` +
        `most 3 s: ${pauseBoundMs} ms)`,
    );
    expect(broken).toEqual([]);
    expect(s.longestPauseMs).toBeLessThanOrEqual(pauseBoundMs);
    // No agent went fail-static, not even between scrapes: their calls and watches moved to another member.
    expect(await failStaticEntries(lab, running)).toEqual(entries);

    const t1 = Date.now();
    await lab.restart('etcd1');
    console.log(`docker: restart etcd1: healthy after ${Date.now() - t1} ms`);
    expect(await memberHealthy(etcd1.clientUrl)).toBe(true);
    expect((await lab.status()).etcd.members.find((m) => m.name === 'etcd1')?.killed).toBe(false);
  }, 120_000);

  test('down removes every container and namespace of the lab', async () => {
    await flows?.stop();
    flows = undefined;
    await downDockerLabAndExpectGone(id);
  }, 60_000);
});
