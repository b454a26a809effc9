/**
 * The fault scenarios on the netns lab with the real agent and a three-member etcd: 3 nodes, 4 backends,
 * 120 long-lived TCP flows and 20 UDP flows from the client through every step; each step prints its disruption
 * table (broken flows, longest pause) and the times it measured. Needs root and the built CLI with the `agent`
 * command (`npm run build`); without the agent the suite is skipped, never faked. The lab is removed even when a
 * step fails (afterAll), and a frozen gobgpd is thawed first.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { eventFilter, followEvents } from '@l4fleet/agent';
import { DEFAULT_LIVENESS_INTERVAL_MS, DEFAULT_LIVENESS_TIMEOUT_MS } from '@l4fleet/bgp';
import { frrPaths, parseBgpSummary, vtysh } from '@l4fleet/daemons';
import {
  agentAvailable,
  BGP_HOLD_TIME_S,
  DEFAULT_STATE_ROOT,
  downLab,
  FlowRun,
  hostsOfKind,
  Lab,
  labFleet,
  restartAgent,
  routerNextHops,
  signalDaemon,
  VIP_TCP,
} from '@l4fleet/lab';
import { QUIET_EXTRA_PAUSE_MS, quietPauseBoundMs } from '@l4fleet/test-support/lab-kill';
import {
  agentMetrics,
  brokenIds,
  failStaticEntries,
  l4fleetRun,
  sleep,
  step,
} from '@l4fleet/test-support/lab-scenario';
import { nodePauses } from '@l4fleet/test-support/node-pauses';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

const agentReady = await agentAvailable();
const id = `f${Math.random().toString(36).slice(2, 8)}`;
const controlSlot = 100 + Math.floor(Math.random() * 150);
/** The lab fleet's health check (lab/src/topology/fleet.ts): every 1 s, down after 3 failures, up after 2. */
const HEALTH_INTERVAL_MS = 1_000;
const HEALTH_FALL = 3;
const HEALTH_RISE = 2;
/** Slack for the 2-core CI machines on top of what the product promises (decisions through etcd, BGP update). */
const SLACK_MS = 3_000;
/**
 * A hung gobgpd is reported within the speaker's liveness interval + deadline (1 + 2 s); twice the slack because the
 * agent's event loop and the metrics scrape both run on the loaded 2-core machine (one run: 6.4 s). Before the
 * liveness ping it was found at the next 10 s resync plus the 5 s call deadline.
 */
const HUNG_REPORT_MAX_MS = DEFAULT_LIVENESS_INTERVAL_MS + DEFAULT_LIVENESS_TIMEOUT_MS + 2 * SLACK_MS;
/**
 * No data-plane event happens in the control-plane scenarios, so what the flows' longest pause shows beyond the lab's
 * own is a stall. The lab's own is the flow worker or the router starved of CPU (lab-e2e's drain step: 279 ms in a
 * full CI run, 0.9-1.0 s at load 10-16), which a fixed 1 s bound mistook for a stall. So each step is held against
 * flows the fault cannot have touched, over a window as long: the same flows in a quiet window just before (etcd), or
 * the other nodes' flows over the same window (agent restarts); it may add this much. The etcd steps are also capped
 * at 3 s (quietPauseBoundMs): a quiet window that itself stalled 3 s let a 3.4 s stall of the step pass.
 */
const CONTROL_PLANE_EXTRA_PAUSE_MS = QUIET_EXTRA_PAUSE_MS;
/**
 * The etcd steps' windows, from mark to the disruption table: a lab status, then `apply` (0.8-5.2 s; refused after
 * 5-17 s with no quorum), fail-static (0.2-2.6 s), the settle time. The quiet window before lasts as long, with the
 * same status read in it; a step done sooner waits out the rest.
 */
const KILL_ONE_WINDOW_MS = 15_000;
const KILL_TWO_WINDOW_MS = 20_000;

let lab: Lab;
let flows: FlowRun;
let frozenGobgpd: string | undefined;

const prefixes = () => lab.topology.vips.map((v) => `${v.address}/${v.address.includes(':') ? 128 : 32}`);
const tcpPrefix = `${VIP_TCP.address}/32`;
const fabricIpv4 = (node: string) =>
  lab.topology.segments.find((s) => s.name === 'fabric')?.attachments.find((a) => a.host === node)?.ipv4 ?? '';
const nodes = () => hostsOfKind(lab.topology, 'node').map((n) => n.name);

/** The router's next hops per VIP prefix, sorted. */
async function routes(): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const p of prefixes()) out[p] = (await routerNextHops(lab.ns('router'), p)).sort();
  return out;
}

/** A node's agent metrics. */
const metrics = (node: string): Promise<string> => agentMetrics(lab, node);

/** Each node's Maglev tables (l4fleet_table_checksum_info: VIP and checksum), so a change of any slot shows. */
async function tables(): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const n of nodes()) {
    const lines = (await metrics(n)).split('\n').filter((l) => l.startsWith('l4fleet_table_checksum_info{'));
    out[n] = lines.map((l) => l.replace(/,?(node|fleet)="[^"]*"/g, '')).sort();
  }
  return out;
}

/** What must not move under a control-plane fault: routes, each node's announcements, each node's tables. */
async function forwardingState() {
  const status = await lab.status();
  return {
    routes: await routes(),
    announced: status.nodes.map((n) => [n.name, [...n.announced].sort()]),
    tables: await tables(),
  };
}

const routerVtyDir = () => frrPaths(join(process.env.L4FLEET_LAB_STATE_DIR ?? DEFAULT_STATE_ROOT, id, 'router')).vtyDir;

/** The router's BGP state of `node` (FRR's name, e.g. `Established`). */
async function routerSession(node: string): Promise<string> {
  const summary = parseBgpSummary(await vtysh(lab.ns('router'), routerVtyDir(), 'show bgp ipv4 unicast summary json'));
  return summary.find((p) => p.address === fabricIpv4(node))?.state ?? 'absent';
}

/** The router's next hops for the TCP VIP only: one `ip route` per poll, so polls are ~10x denser than routes(). */
async function tcpHops(): Promise<string[]> {
  return routerNextHops(lab.ns('router'), tcpPrefix);
}

/**
 * What the router remembers of `node`: sessions it established and dropped (FRR's neighbor counters), and when the
 * node's path to the TCP VIP last changed. A withdraw and re-announce, or a session reset, changes one of them.
 */
interface RouterMemory {
  readonly established: number;
  readonly dropped: number;
  readonly pathUpdated: unknown;
}

async function routerMemory(node: string): Promise<RouterMemory> {
  const address = fabricIpv4(node);
  const neighbor = JSON.parse(await vtysh(lab.ns('router'), routerVtyDir(), `show bgp neighbors ${address} json`));
  const route = JSON.parse(await vtysh(lab.ns('router'), routerVtyDir(), `show bgp ipv4 unicast ${tcpPrefix} json`));
  const path = (route.paths ?? []).find((p: { peer?: { peerId?: string } }) => p.peer?.peerId === address);
  return {
    established: neighbor[address]?.connectionsEstablished,
    dropped: neighbor[address]?.connectionsDropped,
    pathUpdated: path?.lastUpdate?.epoch,
  };
}

/**
 * The router remembers the same: no session established or dropped since, and the path not replaced. FRR prints the
 * path's last update as wall-clock epoch computed from a monotonic age, so it jitters by a second between two reads
 * of an untouched path (seen: 1796212608 then 1796212607); a re-announce would move it by the time since.
 */
function expectSameMemory(now: RouterMemory, then: RouterMemory): void {
  expect({ established: now.established, dropped: now.dropped }).toEqual({
    established: then.established,
    dropped: then.dropped,
  });
  expect(typeof now.pathUpdated).toBe('number');
  expect(Math.abs(Number(now.pathUpdated) - Number(then.pathUpdated))).toBeLessThanOrEqual(1);
}

/** The longest pause of any flow since the last mark; a gap still open counts (the worker's report). */
function pauseMs(): number {
  return Math.max(0, ...flows.report.flows.map((f) => f.maxPauseMs));
}

/** Sleeps out what is left of `windowMs` since `startMs`, and at least `minMs`. */
const waitOut = (startMs: number, windowMs: number, minMs: number) =>
  sleep(Math.max(minMs, windowMs - (Date.now() - startMs)));

/**
 * A quiet window of `windowMs` just before a step: marks, reads what the step compares against (forwardingState():
 * a lab status and every node's metrics, so the quiet window also starts a CLI), waits out the rest; returns that
 * read and the flows' longest pause over the window.
 */
async function quietWindow<T>(windowMs: number, read: () => Promise<T>): Promise<{ value: T; pauseMs: number }> {
  await flows.mark();
  const start = Date.now();
  const value = await read();
  await waitOut(start, windowMs, 0);
  return { value, pauseMs: pauseMs() };
}

/** Polls `ok` every 100 ms; returns ms until it held, or throws naming `what` after `timeoutMs`. */
async function msUntil(what: string, ok: () => Promise<boolean>, timeoutMs: number): Promise<number> {
  const start = Date.now();
  while (Date.now() - start < timeoutMs) {
    if (await ok().catch(() => false)) return Date.now() - start;
    await sleep(100);
  }
  throw new Error(`${what}: not within ${timeoutMs} ms`);
}

/** A write that changes neither a table nor an announcement: the web pool's health check timeout. */
function writeFleet(timeoutMs: number): string {
  const fleet = labFleet(lab.topology) as { pools: { name: string; healthCheck: { timeoutMs: number } }[] };
  const web = fleet.pools.find((p) => p.name === VIP_TCP.name);
  if (web) web.healthCheck.timeoutMs = timeoutMs;
  const file = join(lab.hostDir('control'), `fleet-${timeoutMs}.json`);
  writeFileSync(file, JSON.stringify(fleet));
  return file;
}

describe
  .skipIf(!agentReady || process.getuid?.() !== 0)
  .sequential(`lab faults - what the fleet survives (lab ${id})`, () => {
    beforeAll(async () => {
      lab = await Lab.up({
        id,
        controlSlot,
        nodes: 3,
        backends: 4,
        mode: 'agent',
        etcdMembers: 3,
        readyTimeoutMs: 90_000,
      });
      flows = await FlowRun.start(lab, { tcpFlows: 120, udpFlows: 20, openTimeoutMs: 60_000 });
    }, 180_000);

    afterAll(async () => {
      if (frozenGobgpd) signalDaemon(lab, frozenGobgpd, 'gobgpd', 'SIGCONT');
      await flows?.stop();
      await downLab(id);
    }, 60_000);

    test('lab status lists the three etcd members; the agents are given every endpoint', async () => {
      const s = await lab.status();
      expect(s.etcd.members.map((m) => m.name)).toEqual(['etcd1', 'etcd2', 'etcd3']);
      expect(s.etcd.endpoints).toEqual(s.etcd.members.map((m) => m.endpoint));
      expect(new Set(s.etcd.endpoints).size).toBe(3);
    });

    test('kill one etcd member: 0 broken, no announcement or table change, apply still works', async () => {
      const before = brokenIds(flows);
      const entries = await failStaticEntries(lab);
      const quiet = await quietWindow(KILL_ONE_WINDOW_MS, forwardingState);
      const state = quiet.value;
      await flows.mark();
      const markedAt = Date.now();
      // etcd1 is every client's first endpoint: the agents and the CLI must fail over.
      await lab.kill('etcd1');
      expect((await lab.status()).etcd.members.find((m) => m.name === 'etcd1')?.killed).toBe(true);
      const t0 = Date.now();
      const applied = await l4fleetRun(lab, ['apply', '-f', writeFleet(600)], { allowFailure: true });
      const applyMs = Date.now() - t0;
      console.log(`kill etcd1: apply took ${applyMs} ms (exit ${applied.code})`);
      expect(applied.code, applied.stderr).toBe(0);
      await waitOut(markedAt, KILL_ONE_WINDOW_MS, 5_000);
      const windowMs = Date.now() - markedAt;
      const { s, broken } = await step(flows, 'kill etcd1 (1 of 3)', before, 0);
      // The quiet window's + 500 ms, at most 3 s.
      const pauseBoundMs = quietPauseBoundMs(quiet.pauseMs);
      console.log(
        `kill etcd1: longest pause ${s.longestPauseMs} ms over ${windowMs} ms; ${quiet.pauseMs} ms over the quiet ${KILL_ONE_WINDOW_MS} ms before (bound ${pauseBoundMs} ms)`,
      );
      expect(broken).toEqual([]);
      expect(s.longestPauseMs).toBeLessThanOrEqual(pauseBoundMs);
      expect(await forwardingState()).toEqual(state);
      // The agents moved to another member: none of them went fail-static, not even for a moment (the node whose
      // watches were on etcd1 saw them break; its probe, through the other members, answered).
      expect(await failStaticEntries(lab)).toEqual(entries);
      const failStatic = await Promise.all(
        nodes().map(async (n) => [n, /^l4fleet_fail_static(\{[^}]*\})? 0$/m.test(await metrics(n))]),
      );
      expect(failStatic).toEqual(nodes().map((n) => [n, true]));
      await lab.restart('etcd1');
      expect((await lab.status()).etcd.members.every((m) => !m.killed)).toBe(true);
    }, 150_000);

    test('kill two of three etcd members: fail-static (0 broken, no change), writes refused clearly; restore converges', async () => {
      const before = brokenIds(flows);
      const quiet = await quietWindow(KILL_TWO_WINDOW_MS, forwardingState);
      const state = quiet.value;
      await flows.mark();
      const markedAt = Date.now();
      await lab.kill('etcd1');
      await lab.kill('etcd2');
      const t0 = Date.now();
      const refused = await l4fleetRun(lab, ['apply', '-f', writeFleet(700)], { allowFailure: true });
      console.log(
        `kill etcd1+etcd2: apply refused after ${Date.now() - t0} ms (exit ${refused.code}): ${refused.stderr.trim()}`,
      );
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toMatch(/etcd/i);
      expect(refused.stderr).not.toMatch(/\n\s+at /); // an error message, not a stack trace
      // Longer than the agents' etcd timeouts, so fail-static (not a lucky short outage) is what is measured.
      const failStaticMs = await msUntil(
        'every node fail-static',
        async () =>
          (await Promise.all(nodes().map(metrics))).every((m) => /^l4fleet_fail_static(\{[^}]*\})? 1$/m.test(m)),
        30_000,
      );
      console.log(`kill etcd1+etcd2: every node fail-static after ${failStaticMs} ms`);
      await waitOut(markedAt, KILL_TWO_WINDOW_MS, 3_000);
      const windowMs = Date.now() - markedAt;
      const { s, broken } = await step(flows, 'kill etcd1+etcd2 (2 of 3, no quorum)', before, 0);
      // The quiet window's + 500 ms, at most 3 s.
      const pauseBoundMs = quietPauseBoundMs(quiet.pauseMs);
      console.log(
        `kill etcd1+etcd2: longest pause ${s.longestPauseMs} ms over ${windowMs} ms; ${quiet.pauseMs} ms over the quiet ${KILL_TWO_WINDOW_MS} ms before (bound ${pauseBoundMs} ms)`,
      );
      expect(broken).toEqual([]);
      expect(s.longestPauseMs).toBeLessThanOrEqual(pauseBoundMs);
      expect(await forwardingState()).toEqual(state);

      const restoredAt = Date.now();
      await lab.restart('etcd1');
      await lab.restart('etcd2');
      const healthyMs = Date.now() - restoredAt;
      const again = await l4fleetRun(lab, ['apply', '-f', writeFleet(500)], { allowFailure: true });
      expect(again.code, again.stderr).toBe(0);
      // Converged: no agent is fail-static any more (each sees etcd again) and every one serves.
      const convergedMs = await msUntil(
        'every node out of fail-static and serving after the restore',
        async () => {
          const all = await Promise.all(nodes().map(metrics));
          return all.every(
            (m) =>
              /^l4fleet_fail_static(\{[^}]*\})? 0$/m.test(m) &&
              /^l4fleet_node_state\{[^}]*state="serving"[^}]*\} 1$/m.test(m),
          );
        },
        30_000,
      );
      console.log(`restore etcd1+etcd2: healthy after ${healthyMs} ms, every node serving ${convergedMs} ms later`);
      const end = await step(flows, 'restore etcd1+etcd2', before, 0);
      expect(end.broken).toEqual([]);
      expect(await forwardingState()).toEqual(state);
    }, 180_000);

    test('gobgpd hung (SIGSTOP) on a node: the router drops it within the hold time, the agent reports it, SIGCONT brings it back without flapping', async () => {
      const before = brokenIds(flows);
      const address = fabricIpv4('node3');
      expect((await routes())[tcpPrefix]).toContain(address);
      // Events from NATS as `l4fleet events` shows them: the agent's own report of its gobgpd.
      // In this process, subscribed before the fault: `l4fleet events` as a child took up to ~9 s to subscribe on the
      // loaded CI machine, longer than the agent now takes to report (it missed the report in one run).
      const received: { data: { state: string; reason?: string } }[] = [];
      const stopEvents = new AbortController();
      let subscribed: () => void = () => undefined;
      const ready = new Promise<void>((resolve) => {
        subscribed = resolve;
      });
      const following = followEvents({
        servers: [lab.topology.control.natsUrl],
        subject: eventFilter('l4fleet', 'default', { kind: 'bgp.session', node: 'node3' }),
        signal: stopEvents.signal,
        onSubscribed: () => subscribed(),
        onMessage: (text) => received.push(JSON.parse(text)),
      });
      await Promise.race([ready, following, sleep(15_000)]);
      await flows.mark();
      frozenGobgpd = 'node3';
      signalDaemon(lab, 'node3', 'gobgpd', 'SIGSTOP');
      // Both from the SIGSTOP, polled side by side. The speaker pings gobgpd every second (GetBgp, 2 s deadline):
      // a hung one is reported within interval + timeout, not at the next 10 s resync as before.
      const [droppedMs, reportedMs] = await Promise.all([
        msUntil(
          'router drops node3',
          async () => !(await tcpHops()).includes(address),
          BGP_HOLD_TIME_S * 1_000 + SLACK_MS,
        ),
        msUntil(
          'node3 agent reports gobgpd unreachable',
          async () => /^l4fleet_gobgpd_reachable(\{[^}]*\})? 0$/m.test(await metrics('node3')),
          HUNG_REPORT_MAX_MS,
        ),
      ]);
      const hung = await step(flows, 'gobgpd on node3 hung (SIGSTOP)', before, 1_000);
      console.log(`gobgpd hung: router dropped node3 after ${droppedMs} ms; agent reported it after ${reportedMs} ms`);
      expect(hung.broken).toEqual([]);
      expect(hung.s.longestPauseMs).toBeLessThanOrEqual(BGP_HOLD_TIME_S * 1_000 + 1_000);

      await flows.mark();
      signalDaemon(lab, 'node3', 'gobgpd', 'SIGCONT');
      frozenGobgpd = undefined;
      const backMs = await msUntil('node3 back in ECMP', async () => (await tcpHops()).includes(address), 30_000);
      const backAt = await routerMemory('node3');
      // No flap storm: once back, the session stays up and the route keeps node3 for 10 s.
      let flaps = 0;
      let last = 'Established';
      const watchUntil = Date.now() + 10_000;
      for (let i = 0; i < 200 && Date.now() < watchUntil; i++) {
        const [session, hops] = await Promise.all([routerSession('node3'), tcpHops()]);
        const now = session === 'Established' && hops.includes(address) ? 'Established' : session;
        if (now !== last && now !== 'Established') flaps++;
        last = now;
        await sleep(100);
      }
      const later = await routerMemory('node3');
      console.log(
        `gobgpd continued: router's memory of node3 when back ${JSON.stringify(backAt)}, 10 s later ${JSON.stringify(later)}`,
      );
      expectSameMemory(later, backAt);
      const back = await step(flows, 'gobgpd on node3 continued (SIGCONT)', before, 0);
      stopEvents.abort();
      await following;
      const reported = received;
      console.log(`gobgpd continued: node3 back in ECMP after ${backMs} ms; flaps in the next 10 s: ${flaps}`);
      // The report must be among the node's session events (an `idle` one may come first).
      console.log(`gobgpd hung: bgp.session events of node3: ${JSON.stringify(reported.map((e) => e.data))}`);
      expect(reported.map((e) => e.data)).toContainEqual(
        expect.objectContaining({ state: 'unknown', reason: 'gobgpdUnreachable' }),
      );
      expect(/^l4fleet_gobgpd_reachable(\{[^}]*\})? 1$/m.test(await metrics('node3'))).toBe(true);
      expect(flaps).toBe(0);
      expect(back.broken).toEqual([]);
    }, 150_000);

    test('the agent killed (SIGKILL) 10 times in 30 s on a node: forwarding continues, 0 broken, no route flap', async () => {
      const before = brokenIds(flows);
      const address = fabricIpv4('node2');
      const carriedBefore = await flows.carriers();
      await flows.mark();
      const memory = await routerMemory('node2');
      let missing = 0;
      let samples = 0;
      const killedAt: number[] = [];
      const start = Date.now();
      for (let kill = 0; kill < 10; kill++) {
        killedAt.push(Date.now() - start);
        signalDaemon(lab, 'node2', 'agent', 'SIGKILL');
        // A supervisor (systemd Restart=always) starts it again at once; it is killed again 3 s later.
        await sleep(100);
        await restartAgent(lab, 'node2');
        const until = start + (kill + 1) * 3_000;
        while (Date.now() < until) {
          samples++;
          if (!(await tcpHops()).includes(address)) missing++;
          await sleep(50);
        }
      }
      const { broken } = await step(flows, 'agent on node2 killed 10 times in 30 s', before, 1_000);
      // node2's flows against the other nodes' over the same window: 10 agent starts on 2 cores starve the flow worker
      // and the router for every flow alike (Node's start took 8.5 s at load 20); only a stall of node2's forwarding
      // is node2's alone. Flows by the node that carried them before (the route never moved: `missing` below).
      const {
        nodeFlows: node2Flows,
        nodePauseMs: node2PauseMs,
        othersPauseMs,
      } = nodePauses(flows, carriedBefore, 'node2');
      console.log(
        `agent SIGKILL x10: route without node2 in ${missing} of ${samples} samples over ${Date.now() - start} ms; node2's ${node2Flows} flows paused <= ${node2PauseMs} ms, the others <= ${othersPauseMs} ms`,
      );
      const after = await routerMemory('node2');
      console.log(
        `agent SIGKILL x10: kills at ${killedAt.join(', ')} ms; router's memory of node2 ${JSON.stringify(memory)} -> ${JSON.stringify(after)}`,
      );
      expect(killedAt.at(-1)).toBeLessThanOrEqual(30_000);
      expect(memory.established).toBeGreaterThan(0);
      expectSameMemory(after, memory);
      expect(broken).toEqual([]);
      expect(missing).toBe(0);
      expect(node2Flows).toBeGreaterThan(0);
      expect(node2PauseMs).toBeLessThanOrEqual(othersPauseMs + CONTROL_PLANE_EXTRA_PAUSE_MS);
      expect(await routerSession('node2')).toBe('Established');
    }, 120_000);

    test('every member of the pools fails: each VIP is withdrawn on every node, and announced again when one recovers', async () => {
      const backends = hostsOfKind(lab.topology, 'backend').map((b) => b.name);
      const t0 = Date.now();
      for (const b of backends) await lab.failBackend(b);
      const allNodes = nodes();
      const withdrawnMs = await msUntil(
        'every VIP withdrawn on every node',
        // No next hop left at the router: no node announces the VIP any more.
        async () => Object.values(await routes()).every((hops) => hops.length === 0),
        HEALTH_INTERVAL_MS * HEALTH_FALL + SLACK_MS * 2,
      );
      expect((await lab.status()).nodes.map((n) => [n.name, n.announced])).toEqual(allNodes.map((n) => [n, []]));
      const t1 = Date.now();
      await lab.restoreBackend('backend1');
      const announcedMs = await msUntil(
        'every VIP announced again by every node',
        async () => Object.values(await routes()).every((hops) => hops.length === allNodes.length),
        HEALTH_INTERVAL_MS * HEALTH_RISE + SLACK_MS * 2,
      );
      console.log(
        `pool fails: withdrawn everywhere ${withdrawnMs} ms after the last of ${backends.length} backends failed (${t1 - t0 - withdrawnMs} ms to fail them); announced again ${announcedMs} ms after backend1 recovered`,
      );
      expect(await lab.probe('client', VIP_TCP)).toContain('backend=backend1');
    }, 120_000);
  });
