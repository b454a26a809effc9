/**
 * The agent's BFD controller against real FRR bfdd on both ends (RFC 5880/5881 single hop): a router namespace whose
 * bfdd has the node as a configured peer (as the lab router's bgpd registers it), a node namespace with a bare
 * bfdd (no peer in its file: the agent configures it from agent.yaml over vtysh), one veth between them. The agent
 * is the real createAgent with the in-memory store, the fake speaker and a data plane that fails on demand: a
 * failed apply must set the node's session AdminDown so the router's session goes down at once, and a good apply
 * must bring it back. Uniquely named namespaces, no fixed ports: run under the namespace lock. Needs root.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Agent, type AgentEvent, createAgent, parseAgentConfig } from '@l4fleet/agent';
import { createFakeSpeaker } from '@l4fleet/bgp';
import { bfdTimers, frrDaemonArgv, parseBfdPeers, prepareBfddDir, vtysh } from '@l4fleet/daemons';
import { createRecordingDataPlane } from '@l4fleet/dataplane';
import { type Child, run, spawnChild } from '@l4fleet/process';
import { MemoryFleetStore } from '@l4fleet/store';
import { until } from '@l4fleet/test-support/eventually';
import { twoPoolFleet } from '@l4fleet/test-support/fleets';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

const isRoot = process.getuid?.() === 0;
const tag = randomBytes(3).toString('hex');
const routerNs = `l4bfr${tag}`;
const nodeNs = `l4bfn${tag}`;
const ROUTER = '198.18.250.1';
const NODE = '198.18.250.2';
const TIMERS = bfdTimers(100, 3);
const logger = pino({ level: process.env.L4FLEET_TEST_LOG ?? 'silent' });
const fleet = twoPoolFleet({ type: 'tcp', intervalMs: 100, timeoutMs: 50, rise: 1, fall: 2 });

const dir = mkdtempSync(join(tmpdir(), 'l4fleet-agent-bfd-'));
chmodSync(dir, 0o755); // bfdd runs as frr and must reach its directory below this one
const children: Child[] = [];
let routerVty = '';
let agent: Agent | undefined;
let agentFile: (peers: readonly string[]) => ReturnType<typeof parseAgentConfig> = () => {
  throw new Error('not set up');
};
let broken = false;
const events: AgentEvent[] = [];
let newAgent: () => Agent = () => {
  throw new Error('not set up');
};

/** The router's view of the node's session (`up`, `down`, ...), or `absent`. */
async function routerState(): Promise<string> {
  const peers = parseBfdPeers(await vtysh(routerNs, routerVty, 'show bfd peers json'));
  return peers.find((p) => p.peer === NODE)?.status ?? 'absent';
}

async function waitRouter(state: string, timeoutMs: number): Promise<number> {
  const t0 = Date.now();
  await until(`router session ${state}`, async () => (await routerState()) === state, timeoutMs, 20);
  return Date.now() - t0;
}

describe.skipIf(!isRoot)('agent bfd - the node session follows the data plane (real bfdd on both ends)', () => {
  beforeAll(async () => {
    await run(['ip', 'netns', 'add', routerNs]);
    await run(['ip', 'netns', 'add', nodeNs]);
    await run(['ip', '-n', nodeNs, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', routerNs]);
    await run(['ip', '-n', routerNs, 'addr', 'add', `${ROUTER}/30`, 'dev', 'eth0']);
    await run(['ip', '-n', nodeNs, 'addr', 'add', `${NODE}/30`, 'dev', 'eth0']);
    for (const ns of [routerNs, nodeNs]) {
      await run(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
      await run(['ip', '-n', ns, 'link', 'set', 'eth0', 'up']);
    }
    const router = prepareBfddDir(join(dir, 'router'), {
      hostname: 'router',
      peers: [{ address: NODE, localAddress: ROUTER, ...TIMERS }],
    });
    const node = prepareBfddDir(join(dir, 'node'), { hostname: 'node' });
    routerVty = router.vtyDir;
    children.push(spawnChild(frrDaemonArgv('bfdd', router), { namespace: routerNs }));
    children.push(spawnChild(frrDaemonArgv('bfdd', node), { namespace: nodeNs }));
    const died = () => children.find((c) => c.exitReason() !== undefined)?.log();
    await until('router bfdd answers', async () => died() ?? (await routerState()), 10_000, 100);
    await until('node bfdd answers', () => vtysh(nodeNs, node.vtyDir, 'show bfd peers json'), 10_000, 100);

    const store = new MemoryFleetStore();
    await store.apply(fleet);
    const dataPlane = createRecordingDataPlane({ requireSamePort: false });
    agentFile = (peers: readonly string[]) =>
      parseAgentConfig({
        node: { name: 'n1', interface: 'eth0', address: NODE },
        bgp: { asn: 65001, peers: peers.map((address) => ({ address, asn: 65000 })) },
        etcd: { endpoints: ['http://127.0.0.1:2379'] },
        dataplane: { driver: 'dry-run' },
        // The peers default to the BGP peers; the agent runs in the host namespace and reaches bfdd by its socket.
        bfd: {
          enabled: true,
          vtyDir: node.vtyDir,
          receiveIntervalMs: 100,
          transmitIntervalMs: 100,
          pollIntervalMs: 200,
        },
      });
    newAgent = () =>
      createAgent({
        config: agentFile([ROUTER]),
        store,
        speaker: createFakeSpeaker(),
        dataPlane: {
          ...dataPlane,
          apply: async (d) => {
            if (broken) throw new Error('data plane broken (test)');
            return dataPlane.apply(d);
          },
        },
        logger,
        probe: async () => ({ ok: true, latencyMs: 1 }),
        onEvent: (e) => events.push(e),
      });
    agent = newAgent();
    await agent.start();
    await agent.whenReady(10_000);
    (globalThis as { l4bfdStore?: MemoryFleetStore }).l4bfdStore = store;
  }, 60_000);

  afterAll(async () => {
    await agent?.close();
    for (const c of children.reverse()) await c.stop();
    for (const ns of [routerNs, nodeNs]) await run(['ip', 'netns', 'delete', ns], { allowFailure: true });
    rmSync(dir, { recursive: true, force: true });
  }, 30_000);

  test('the agent configures the session from agent.yaml; it comes up and shows in status and metrics', async () => {
    await waitRouter('up', 10_000);
    await until('agent sees up', () => agent?.status().bfd?.[ROUTER] === 'up', 5_000, 20);
    const metrics = await agent?.metrics.registry.metrics();
    expect(metrics).toMatch(/^l4fleet_bfd_session_up\{[^}]*peer="198\.18\.250\.1"[^}]*\} 1$/m);
    expect(events.map((e) => e.kind)).toContain('bfd.session');
    // The timers are agent.yaml's (the node's bfdd.conf had no peer).
    const node = JSON.parse(await vtysh(undefined, join(dir, 'node', 'vty'), `show bfd peer ${ROUTER} json`));
    expect(node).toMatchObject({ 'receive-interval': 100, 'transmit-interval': 100, 'detect-multiplier': 3 });
  }, 20_000);

  test('a failed apply: AdminDown, the router session goes down at once; a good apply brings it back', async () => {
    const store = (globalThis as { l4bfdStore?: MemoryFleetStore }).l4bfdStore as MemoryFleetStore;
    broken = true;
    const t0 = Date.now();
    // A change the data plane must take: one VIP fewer.
    await store.apply({ ...fleet, vips: fleet.vips.slice(0, 1) });
    const downMs = await waitRouter('down', 5_000);
    console.log(`agent bfd: data plane failed -> router session down ${Date.now() - t0} ms after the change`);
    expect(agent?.status().bfd?.[ROUTER]).toBe('shutdown');
    expect(await agent?.metrics.registry.metrics()).toMatch(/^l4fleet_bfd_admin_down\{[^}]*\} 1$/m);
    expect(events.map((e) => e.data)).toContainEqual(
      expect.objectContaining({ peer: ROUTER, state: 'shutdown', reason: 'dataPlaneFailed' }),
    );
    // Held: still down a detection time later (the agent does not lift it while applies fail).
    await new Promise((r) => setTimeout(r, 1_500));
    expect(await routerState()).toBe('down');

    broken = false;
    const t1 = Date.now();
    const upMs = await waitRouter('up', 10_000);
    console.log(`agent bfd: data plane recovered -> router session up after ${upMs} ms (down took ${downMs} ms)`);
    await until('agent sees up again', () => agent?.status().bfd?.[ROUTER] === 'up', 5_000, 20);
    expect(await agent?.metrics.registry.metrics()).toMatch(/^l4fleet_bfd_admin_down\{[^}]*\} 0$/m);
    expect(events.map((e) => e.data)).toContainEqual(
      expect.objectContaining({ peer: ROUTER, reason: 'dataPlaneRecovered' }),
    );
    expect(Date.now() - t1).toBeLessThan(10_000);
  }, 30_000);

  test("a reload adds a router's session to the node's bfdd and removes it again; the first session stays up", async () => {
    const SECOND = '198.18.251.1'; // a second router, configured and never answering
    const nodePeers = async () =>
      parseBfdPeers(await vtysh(undefined, join(dir, 'node', 'vty'), 'show bfd peers json')).map((p) => p.peer);
    await waitRouter('up', 10_000);
    await until('agent sees up', () => agent?.status().bfd?.[ROUTER] === 'up', 5_000, 20);
    const routerUpS = async () =>
      parseBfdPeers(await vtysh(routerNs, routerVty, 'show bfd peers json')).find((p) => p.peer === NODE)?.sinceS ?? -1;
    await until('the session up for a second', async () => (await routerUpS()) >= 1, 5_000, 100);
    const upBefore = await routerUpS();
    const plan = await agent?.reload(async () => agentFile([ROUTER, SECOND]));
    expect(plan?.changed).toEqual(['bgp.peers', 'bfd.peers']);
    await until('the second session in bfdd', async () => (await nodePeers()).includes(SECOND), 5_000, 50);
    expect(await routerState()).toBe('up');
    await agent?.reload(async () => agentFile([ROUTER]));
    await until('the second session gone', async () => !(await nodePeers()).includes(SECOND), 5_000, 50);
    expect(await nodePeers()).toEqual([ROUTER]);
    expect(await routerState()).toBe('up');
    expect(agent?.status().bfd).toEqual({ [ROUTER]: 'up' });
    // The session was not reset by either reload: its time in `up` only grew.
    expect(await routerUpS()).toBeGreaterThanOrEqual(upBefore);
  }, 30_000);

  test("a reload of the timers: the router's session takes the node's new intervals (RFC 5880 Poll Sequence) and stays up", async () => {
    await waitRouter('up', 10_000);
    const routerPeer = async () =>
      (
        JSON.parse(await vtysh(routerNs, routerVty, 'show bfd peers json')) as ({ peer: string } & Record<
          string,
          unknown
        >)[]
      ).find((p) => p.peer === NODE);
    const timers = async () => {
      const p = await routerPeer();
      return `${p?.['remote-receive-interval']}/${p?.['remote-transmit-interval']} x${p?.['remote-detect-multiplier']}`;
    };
    expect(await timers()).toBe('100/100 x3');
    await until('the session up for a second', async () => Number((await routerPeer())?.uptime ?? 0) >= 1, 5_000, 100);
    const upBefore = Number((await routerPeer())?.uptime);
    const slower = (receiveIntervalMs: number, transmitIntervalMs: number, detectMultiplier: number) => {
      const base = agentFile([ROUTER]);
      return { ...base, bfd: { ...base.bfd, receiveIntervalMs, transmitIntervalMs, detectMultiplier } };
    };
    // Watch the router's view while the timers change: it must never leave `up`.
    const seen = new Set<string>();
    let watching = true;
    const watch = (async () => {
      while (watching) {
        seen.add(await routerState());
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    try {
      const plan = await agent?.reload(async () => slower(300, 200, 5));
      expect(plan?.changed).toEqual(['bfd.receiveIntervalMs', 'bfd.transmitIntervalMs', 'bfd.detectMultiplier']);
      await until('the router sees the new timers', async () => (await timers()) === '300/200 x5', 5_000, 50);
      await agent?.reload(async () => agentFile([ROUTER]));
      await until('the router sees the first timers again', async () => (await timers()) === '100/100 x3', 5_000, 50);
    } finally {
      watching = false;
      await watch;
    }
    expect([...seen]).toEqual(['up']);
    expect(Number((await routerPeer())?.uptime)).toBeGreaterThanOrEqual(upBefore);
    expect(agent?.status().bfd).toEqual({ [ROUTER]: 'up' });
  }, 30_000);

  // bfdd keys a single-hop session by the peer address only: `peer X local-address NEW` over a session on OLD succeeds
  // and leaves it on OLD, recording NEW in bfdd's config, after which every `no peer X` is refused (FRR 8.4.4). A
  // restarted agent (agent.yaml's local address edited while it was stopped) reported that session up, on the wrong
  // source, for good; it must replace it.
  test('an agent restarted over a session on another local address replaces it, and the router sees it up', async () => {
    const OLD = '198.18.250.5';
    const nodeVty = join(dir, 'node', 'vty');
    const nodeSession = async () =>
      parseBfdPeers(await vtysh(undefined, nodeVty, 'show bfd peers json')).find((p) => p.peer === ROUTER);
    await waitRouter('up', 10_000);
    await agent?.close();
    agent = undefined;
    await run(['ip', '-n', nodeNs, 'addr', 'add', `${OLD}/32`, 'dev', 'eth0']);
    // As a reload to NODE whose removal of OLD failed would leave it: the session on OLD, NODE in bfdd's config.
    await vtysh(
      undefined,
      nodeVty,
      'configure terminal',
      'bfd',
      `no peer ${ROUTER} local-address ${NODE}`,
      `peer ${ROUTER} local-address ${OLD}`,
      'exit',
      `peer ${ROUTER} local-address ${NODE}`,
    );
    expect((await nodeSession())?.local).toBe(OLD);
    await waitRouter('down', 5_000); // the router's session is with NODE: nothing comes from it now
    agent = newAgent();
    await agent.start();
    await agent.whenReady(10_000);
    await until('the node session on NODE', async () => (await nodeSession())?.local === NODE, 5_000, 50);
    await waitRouter('up', 10_000);
    await until('agent sees up', () => agent?.status().bfd?.[ROUTER] === 'up', 5_000, 20);
  }, 40_000);
});
