import { type BfdPeer, type BfdPeerState, bfdPeerCommands, bfdPeerRemoveCommands } from '@l4fleet/daemons';
import pino from 'pino';
import { describe, expect, test } from 'vitest';
import { createManualClock } from '../clock.js';
import type { BfdSection } from '../config/types.js';
import type { AgentEvent } from '../events/subjects.js';
import { createAgentMetrics } from '../observe/metrics.js';
import type { Bfdd } from './bfdd.js';
import { createBfdController } from './controller.js';

const ROUTER = '198.18.2.1';
const LOCAL = '198.18.2.11';
const OTHER_LOCAL = '198.18.2.12';
const config: BfdSection = {
  enabled: true,
  vtyDir: '/run/test',
  peers: [{ address: ROUTER, localAddress: '198.18.2.11' }],
  receiveIntervalMs: 100,
  transmitIntervalMs: 100,
  detectMultiplier: 3,
  pollIntervalMs: 1_000,
  followDataPlane: true,
};

/**
 * A bfdd in memory that runs the vtysh lines the real Bfdd sends (bfdPeerCommands, bfdPeerRemoveCommands) the way
 * FRR 8.4.4's bfdd does (measured by rev-bfdd): a single-hop session is keyed by the peer address only.
 * `peer X local-address L` on an existing X keeps the session on its own local address and records L in the
 * northbound config only; `no peer X local-address L` deletes X's session whatever L (and succeeds for a session
 * bfdd does not have), but fails with a validation error while X's recorded local address is not its session's.
 * Sessions come up when created, AdminDown follows `shutdown`; `down` makes it unreachable.
 */
function fakeBfdd() {
  const sessions = new Map<string, BfdPeerState>();
  /** The local address each session's northbound config holds (the last `peer X local-address L`). */
  const recorded = new Map<string, string>();
  const calls: { peer: string; shutdown: boolean | undefined }[] = [];
  /** The timers of each configure call, as `rx/tx xMULT`. */
  const timers: string[] = [];
  let down = false;
  /** configure refuses (bfdd answers, but not to this) while set. */
  let refuseConfigure = false;
  /** remove refuses with this message (bfdd answers, but will not delete the session) while set. */
  let refuseRemove: string | undefined;
  /** configure of this peer waits for `release` (a slow vtysh), and `entered` says it is waiting. */
  let held: { peer: string; entered: () => void; gate: Promise<void> } | undefined;
  /** Runs vtysh lines in order; the first that fails throws (vtysh stops there). */
  const run = (lines: readonly string[]): void => {
    let current: string | undefined;
    for (const line of lines) {
      const add = /^peer (\S+) local-address (\S+)$/.exec(line);
      const del = /^no peer (\S+) local-address (\S+)$/.exec(line);
      if (add) {
        const [, peer, local] = add as unknown as [string, string, string];
        if (!sessions.has(peer)) sessions.set(peer, { peer, local, status: 'up', sinceS: 0 });
        recorded.set(peer, local);
        current = peer;
      } else if (del) {
        const [, peer] = del as unknown as [string, string];
        const s = sessions.get(peer);
        if (s === undefined) continue;
        if (recorded.get(peer) !== s.local) throw new Error('vtysh: % Configuration failed. Error type: validation');
        sessions.delete(peer);
        recorded.delete(peer);
      } else if ((line === 'shutdown' || line === 'no shutdown') && current !== undefined) {
        const s = sessions.get(current);
        if (s) sessions.set(current, { ...s, status: line === 'shutdown' ? 'shutdown' : 'down' });
      }
    }
  };
  const bfdd: Bfdd = {
    async sessions() {
      if (down) throw new Error('vtysh: bfdd is not running');
      return [...sessions.values()];
    },
    async configure(p: BfdPeer, shutdown?: boolean) {
      if (down) throw new Error('vtysh: bfdd is not running');
      if (refuseConfigure) throw new Error('vtysh: % Failed to create session');
      if (held?.peer === p.address) {
        held.entered();
        await held.gate;
      }
      calls.push({ peer: p.address, shutdown });
      timers.push(`${p.receiveIntervalMs}/${p.transmitIntervalMs} x${p.detectMultiplier}`);
      run(bfdPeerCommands(p, shutdown));
    },
    async remove(p) {
      if (down) throw new Error('vtysh: bfdd is not running');
      calls.push({ peer: `-${p.address}`, shutdown: undefined });
      if (refuseRemove !== undefined) throw new Error(refuseRemove);
      run(bfdPeerRemoveCommands(p));
    },
  };
  return {
    bfdd,
    calls,
    timers,
    sessions,
    setStatus: (status: string) =>
      sessions.set(ROUTER, { peer: ROUTER, local: LOCAL, ...sessions.get(ROUTER), status, sinceS: 0 }),
    /** bfdd already has ROUTER's session on `local` (an earlier agent made it), its config recording `recordedLocal`. */
    seed: (local: string, recordedLocal = local) => {
      sessions.set(ROUTER, { peer: ROUTER, local, status: 'up', sinceS: 0 });
      recorded.set(ROUTER, recordedLocal);
    },
    recorded,
    setDown: (d: boolean) => {
      down = d;
    },
    setRefuseConfigure: (r: boolean) => {
      refuseConfigure = r;
    },
    setRefuseRemove: (message: string | undefined) => {
      refuseRemove = message;
    },
    /** Holds the next configure of `peer`: resolves `entered` once it waits, and gives the release. */
    hold(peer: string): { entered: Promise<void>; release: () => void } {
      let entered = () => {};
      let release = () => {};
      const enteredP = new Promise<void>((r) => {
        entered = r;
      });
      const gate = new Promise<void>((r) => {
        release = r;
      });
      held = { peer, entered, gate };
      return {
        entered: enteredP,
        release: () => {
          held = undefined;
          release();
        },
      };
    },
  };
}

function setup(cfg: BfdSection = config) {
  const clock = createManualClock();
  /** The controller's log lines, parsed (pino writes each line to the stream at once). */
  const logs: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => logs.push(JSON.parse(line)) });
  const metrics = createAgentMetrics({ node: 'node1', fleet: 'f', defaultMetrics: false });
  const events: AgentEvent['data'][] = [];
  const fake = fakeBfdd();
  let changes = 0;
  const bfd = createBfdController({
    config: cfg,
    bfdd: fake.bfdd,
    clock,
    metrics,
    events: { emit: (_kind: string, data: AgentEvent['data']) => events.push(data) } as never,
    logger,
    onChange: () => changes++,
  });
  const metric = async (name: string) =>
    (await metrics.registry.getSingleMetric(name)?.get())?.values.find((v) => v.labels.peer === ROUTER)?.value;
  /** The log lines of `event`, with the fields a test compares. */
  const logged = (event: string) =>
    logs
      .filter((l) => l.event === event)
      .map(({ level, peer, err, repeated, failure }) => ({ level, peer, err, repeated, failure }));
  return { clock, bfd, fake, events, metric, metrics, changes: () => changes, logs, logged };
}

describe('bfd controller - sessions in the node bfdd', () => {
  test('configures each peer once with the timers, then reports its state in states(), the metric and events', async () => {
    const t = setup();
    t.bfd.start();
    await t.clock.advance(0);
    expect(t.fake.calls).toEqual([{ peer: ROUTER, shutdown: undefined }]);
    await t.clock.advance(1_000);
    expect(t.bfd.states()).toEqual({ [ROUTER]: 'up' });
    expect(await t.metric('l4fleet_bfd_session_up')).toBe(1);
    t.fake.setStatus('down');
    await t.clock.advance(1_000);
    expect(t.bfd.states()).toEqual({ [ROUTER]: 'down' });
    expect(await t.metric('l4fleet_bfd_session_up')).toBe(0);
    expect(t.events).toEqual([
      { peer: ROUTER, state: 'up', previous: 'unknown' },
      { peer: ROUTER, state: 'down', previous: 'up' },
    ]);
    expect(t.fake.calls).toHaveLength(1); // no reconfiguration while bfdd has the session
    t.bfd.close();
  });

  test('a failed apply sets the session AdminDown at once; a good apply lifts it', async () => {
    const t = setup();
    t.bfd.start();
    await t.clock.advance(1_000);
    t.bfd.setDataPlaneHealthy(true); // the first apply: nothing to change
    await t.clock.advance(0);
    expect(t.fake.calls).toHaveLength(1);
    t.bfd.setDataPlaneHealthy(false);
    await t.clock.advance(0); // not waiting for the next poll
    expect(t.fake.calls.at(-1)).toEqual({ peer: ROUTER, shutdown: true });
    expect(t.bfd.states()).toEqual({ [ROUTER]: 'shutdown' });
    expect(await t.metric('l4fleet_bfd_admin_down')).toBe(1);
    expect(t.events.at(-1)).toEqual({ peer: ROUTER, state: 'shutdown', previous: 'up', reason: 'dataPlaneFailed' });
    await t.clock.advance(5_000);
    expect(t.fake.calls).toHaveLength(2); // held, not sent again
    t.bfd.setDataPlaneHealthy(true);
    await t.clock.advance(0);
    expect(t.fake.calls.at(-1)).toEqual({ peer: ROUTER, shutdown: false });
    expect(await t.metric('l4fleet_bfd_admin_down')).toBe(0);
    expect(t.events.at(-1)).toMatchObject({ state: 'down', previous: 'shutdown', reason: 'dataPlaneRecovered' });
    t.fake.setStatus('up');
    await t.clock.advance(1_000);
    expect(t.bfd.states()).toEqual({ [ROUTER]: 'up' });
    t.bfd.close();
  });

  test('a restarted agent finds the session AdminDown; a good first apply lifts it, an unknown data plane leaves it', async () => {
    const t = setup();
    t.fake.setStatus('shutdown');
    t.bfd.start();
    await t.clock.advance(3_000);
    expect(t.fake.calls).toEqual([{ peer: ROUTER, shutdown: undefined }]);
    expect(t.bfd.states()).toEqual({ [ROUTER]: 'shutdown' });
    t.bfd.setDataPlaneHealthy(true);
    await t.clock.advance(0);
    expect(t.fake.calls.at(-1)).toEqual({ peer: ROUTER, shutdown: false });
    t.bfd.close();
  });

  test('followDataPlane false: a failed apply leaves the session alone', async () => {
    const t = setup({ ...config, followDataPlane: false });
    t.bfd.start();
    await t.clock.advance(1_000);
    t.bfd.setDataPlaneHealthy(false);
    await t.clock.advance(3_000);
    expect(t.fake.calls).toEqual([{ peer: ROUTER, shutdown: undefined }]);
    expect(t.bfd.states()).toEqual({ [ROUTER]: 'up' });
    t.bfd.close();
  });

  test('bfdd unreachable: no state claimed, metric 0; bfdd restarted without the peer: configured again', async () => {
    const t = setup();
    t.bfd.start();
    await t.clock.advance(1_000);
    expect(await t.metric('l4fleet_bfd_session_up')).toBe(1);
    t.fake.setDown(true);
    await t.clock.advance(1_000);
    expect(t.bfd.states()).toEqual({});
    expect(await t.metric('l4fleet_bfd_session_up')).toBe(0);
    expect((await t.metrics.registry.getSingleMetric('l4fleet_bfdd_reachable')?.get())?.values[0]?.value).toBe(0);
    t.fake.sessions.clear();
    t.fake.setDown(false);
    await t.clock.advance(2_000);
    expect(t.fake.calls).toHaveLength(2);
    expect(t.bfd.states()).toEqual({ [ROUTER]: 'up' });
    t.bfd.close();
  });

  test('a reload: a new peer is configured, a removed one leaves bfdd with its state and series; the kept one stays', async () => {
    const t = setup();
    const ROUTER2 = '198.18.2.2';
    t.bfd.start();
    await t.clock.advance(1_000);
    expect(t.bfd.states()).toEqual({ [ROUTER]: 'up' });
    await t.bfd.setPeers([...config.peers, { address: ROUTER2, localAddress: '198.18.2.11' }]);
    expect(t.fake.calls).toEqual([
      { peer: ROUTER, shutdown: undefined },
      { peer: ROUTER2, shutdown: undefined },
    ]);
    await t.clock.advance(1_000);
    expect(t.bfd.states()).toEqual({ [ROUTER]: 'up', [ROUTER2]: 'up' });
    await t.bfd.setPeers([{ address: ROUTER2, localAddress: '198.18.2.11' }]);
    expect(t.fake.calls.at(-1)).toEqual({ peer: `-${ROUTER}`, shutdown: undefined });
    expect([...t.fake.sessions.keys()]).toEqual([ROUTER2]);
    expect(t.bfd.states()).toEqual({ [ROUTER2]: 'up' });
    expect(await t.metric('l4fleet_bfd_session_up')).toBeUndefined(); // ROUTER's series is gone
    expect(t.fake.calls.filter((c) => c.peer === ROUTER2)).toHaveLength(1); // kept: not configured again
    t.bfd.close();
  });

  test('a reload of the timers: every session configured again with them, in the pass it awaits; states stay', async () => {
    const t = setup();
    const ROUTER2 = '198.18.2.2';
    t.bfd.start();
    await t.bfd.setPeers([...config.peers, { address: ROUTER2, localAddress: '198.18.2.11' }]);
    await t.clock.advance(1_000);
    expect(t.bfd.states()).toEqual({ [ROUTER]: 'up', [ROUTER2]: 'up' });
    expect(t.fake.timers).toEqual(['100/100 x3', '100/100 x3']);
    await t.bfd.setTimers({ receiveIntervalMs: 300, transmitIntervalMs: 200, detectMultiplier: 5 });
    expect(t.fake.calls.slice(-2)).toEqual([
      { peer: ROUTER, shutdown: undefined },
      { peer: ROUTER2, shutdown: undefined },
    ]);
    expect(t.fake.timers.slice(-2)).toEqual(['300/200 x5', '300/200 x5']);
    expect(t.bfd.states()).toEqual({ [ROUTER]: 'up', [ROUTER2]: 'up' });
    await t.clock.advance(1_000);
    expect(t.fake.calls).toHaveLength(4); // once each: not configured again at every pass
    t.bfd.close();
  });

  test('a reload while bfdd is down: the removal is retried by the next pass', async () => {
    const t = setup();
    t.bfd.start();
    await t.clock.advance(1_000);
    t.fake.setDown(true);
    await t.bfd.setPeers([]);
    expect(t.fake.sessions.has(ROUTER)).toBe(true);
    t.fake.setDown(false);
    await t.clock.advance(1_000);
    expect(t.fake.sessions.has(ROUTER)).toBe(false);
    t.bfd.close();
  });

  // A removal queued while bfdd did not answer was kept when the next reload put the peer back: the first pass bfdd
  // answered deleted the live session and created it again, so the router saw BFD go down and dropped the BGP session
  // (`neighbor X bfd`) and the node's routes, for a config that ended as it started.
  test('a peer removed while bfdd is down and put back before it answers: its session is not removed', async () => {
    const t = setup();
    t.bfd.start();
    await t.clock.advance(1_000);
    t.fake.setDown(true);
    await t.bfd.setPeers([]);
    await t.bfd.setPeers(config.peers);
    t.fake.setDown(false);
    await t.clock.advance(1_000);
    expect(t.fake.calls.filter((c) => c.peer === `-${ROUTER}`)).toEqual([]);
    expect(t.fake.sessions.has(ROUTER)).toBe(true);
    expect(t.bfd.states()).toEqual({ [ROUTER]: 'up' });
    expect(await t.metric('l4fleet_bfd_session_up')).toBe(1);
    t.bfd.close();
  });

  test('a peer put back with new timers while bfdd is down: configured with them, not removed', async () => {
    const t = setup();
    t.bfd.start();
    await t.clock.advance(1_000);
    t.fake.setDown(true);
    await t.bfd.setPeers([]);
    await t.bfd.setTimers({ receiveIntervalMs: 300, transmitIntervalMs: 200, detectMultiplier: 5 });
    await t.bfd.setPeers(config.peers);
    t.fake.setDown(false);
    await t.clock.advance(1_000);
    expect(t.fake.calls.filter((c) => c.peer === `-${ROUTER}`)).toEqual([]);
    expect(t.fake.timers.at(-1)).toBe('300/200 x5');
    expect(t.bfd.states()).toEqual({ [ROUTER]: 'up' });
    t.bfd.close();
  });

  test('a peer put back with another local address while bfdd is down: the old session goes, the new one is made', async () => {
    const t = setup();
    t.bfd.start();
    await t.clock.advance(1_000);
    t.fake.setDown(true);
    await t.bfd.setPeers([]);
    await t.bfd.setPeers([{ address: ROUTER, localAddress: '198.18.2.12' }]);
    t.fake.setDown(false);
    await t.clock.advance(1_000);
    expect(t.fake.calls.slice(1)).toEqual([
      { peer: `-${ROUTER}`, shutdown: undefined },
      { peer: ROUTER, shutdown: undefined },
    ]);
    expect(t.fake.sessions.get(ROUTER)?.local).toBe('198.18.2.12');
    t.bfd.close();
  });

  // bfdd keys a single-hop session by the peer address only. The removal queue was keyed by address and local address:
  // A -> B -> A while bfdd did not answer took (X, A) out of the queue but left (X, B), a session bfdd never had, and
  // `no peer X local-address B` deleted the live (X, A) session; the router saw BFD down and dropped the BGP session and
  // the node's routes, for a config that ended as it started.
  test('a peer moved to another local address and back while bfdd is down: its session is not removed', async () => {
    const t = setup();
    t.bfd.start();
    await t.clock.advance(1_000);
    t.fake.setDown(true);
    await t.bfd.setPeers([{ address: ROUTER, localAddress: OTHER_LOCAL }]);
    await t.bfd.setPeers([{ address: ROUTER, localAddress: LOCAL }]);
    t.fake.setDown(false);
    await t.clock.advance(1_000);
    expect(t.fake.calls.filter((c) => c.peer === `-${ROUTER}`)).toEqual([]);
    expect(t.fake.sessions.get(ROUTER)?.local).toBe(LOCAL);
    expect(t.bfd.states()).toEqual({ [ROUTER]: 'up' });
    t.bfd.close();
  });

  // A configure of an existing peer with another local address changes nothing in bfdd (the session stays on the old
  // one): the agent reported `up` for a session on the wrong source, for good.
  test('a restarted agent over a session on another local address: the session is replaced by the wanted one', async () => {
    const t = setup();
    t.fake.seed(OTHER_LOCAL);
    t.bfd.start();
    await t.clock.advance(1_000);
    expect(t.fake.calls).toEqual([
      { peer: `-${ROUTER}`, shutdown: undefined },
      { peer: ROUTER, shutdown: undefined },
    ]);
    expect(t.fake.sessions.get(ROUTER)?.local).toBe(LOCAL);
    expect(t.bfd.states()).toEqual({ [ROUTER]: 'up' });
    await t.clock.advance(2_000);
    expect(t.fake.calls).toHaveLength(2); // replaced once
    t.bfd.close();
  });

  test('a restarted agent over an AdminDown session on another local address: made again AdminDown', async () => {
    const t = setup();
    t.fake.seed(OTHER_LOCAL);
    t.fake.setStatus('shutdown'); // the agent before held it for a failed data plane
    t.bfd.start();
    await t.clock.advance(1_000);
    expect(t.fake.calls.at(-1)).toEqual({ peer: ROUTER, shutdown: true });
    expect(t.fake.sessions.get(ROUTER)).toMatchObject({ local: LOCAL, status: 'shutdown' });
    t.bfd.setDataPlaneHealthy(true);
    await t.clock.advance(0);
    expect(t.fake.calls.at(-1)).toEqual({ peer: ROUTER, shutdown: false });
    t.bfd.close();
  });

  // A reload whose removal failed and whose configure succeeded leaves bfdd's config recording the new local address
  // while the session runs on the old one: every `no peer` fails from there until the config is put back in step.
  test('a session whose bfdd config records another local address: replaced, then removable', async () => {
    const t = setup();
    t.fake.seed(OTHER_LOCAL, LOCAL);
    t.bfd.start();
    await t.clock.advance(1_000);
    expect(t.fake.sessions.get(ROUTER)?.local).toBe(LOCAL);
    expect(t.bfd.states()).toEqual({ [ROUTER]: 'up' });
    await t.bfd.setPeers([]);
    expect(t.fake.sessions.has(ROUTER)).toBe(false);
    t.bfd.close();
  });

  test('a removed peer whose bfdd config records another local address is still removed', async () => {
    const t = setup();
    t.bfd.start();
    await t.clock.advance(1_000);
    // A configure with .12 over the .11 session (a reload to .12 whose removal of .11 failed, an older agent's).
    t.fake.recorded.set(ROUTER, OTHER_LOCAL);
    await t.bfd.setPeers([]);
    expect(t.fake.sessions.has(ROUTER)).toBe(false);
    await t.clock.advance(1_000);
    expect(t.fake.calls.filter((c) => c.peer === `-${ROUTER}`)).toHaveLength(1);
    t.bfd.close();
  });

  // bfdd keys the session by the peer address and refuses `no peer` once a `peer` line with another local address
  // is recorded: a removal named with agent.yaml's local address, not the session's, never removed it.
  test('a restarted agent whose peer runs on another local address in bfdd, removed before any pass replaced it: removed', async () => {
    const t = setup();
    t.fake.seed(OTHER_LOCAL);
    t.fake.setDown(true);
    t.bfd.start();
    await t.clock.advance(1_000);
    await t.bfd.setPeers([]);
    t.fake.setDown(false);
    await t.clock.advance(1_000);
    await t.clock.advance(1_000);
    expect(t.fake.sessions.has(ROUTER)).toBe(false);
    t.bfd.close();
  });

  test('a peer added while bfdd is down and taken out before it answers: never created', async () => {
    const t = setup();
    const ROUTER2 = '198.18.2.2';
    t.bfd.start();
    await t.clock.advance(1_000);
    t.fake.setDown(true);
    await t.bfd.setPeers([...config.peers, { address: ROUTER2, localAddress: '198.18.2.11' }]);
    await t.bfd.setPeers(config.peers);
    t.fake.setDown(false);
    await t.clock.advance(1_000);
    // Neither configured nor removed: removal lines for a session bfdd never had would create it and delete it.
    expect(t.fake.calls.filter((c) => c.peer.endsWith(ROUTER2))).toEqual([]);
    expect([...t.fake.sessions.keys()]).toEqual([ROUTER]);
    expect(t.bfd.states()).toEqual({ [ROUTER]: 'up' });
    t.bfd.close();
  });

  // docs/design/0010-bfd.md: unknown is not up. bfdd answers but has lost the session (restarted) and refuses to
  // configure it again: the last state ('up') must not be claimed on.
  test('bfdd without the session and configure refused: no state claimed, metric 0', async () => {
    const t = setup();
    t.bfd.start();
    await t.clock.advance(1_000);
    expect(t.bfd.states()).toEqual({ [ROUTER]: 'up' });
    const before = t.changes();
    t.fake.sessions.clear();
    t.fake.setRefuseConfigure(true);
    await t.clock.advance(1_000);
    expect(t.bfd.states()).toEqual({});
    expect(await t.metric('l4fleet_bfd_session_up')).toBe(0);
    expect(t.changes()).toBeGreaterThan(before);
    t.fake.setRefuseConfigure(false);
    await t.clock.advance(2_000);
    expect(t.bfd.states()).toEqual({ [ROUTER]: 'up' });
    t.bfd.close();
  });

  // A pass iterated the peer list it started with: a peer a reload removed while a configure call was under way was
  // configured again and put back in states and metrics, for good (the next pass removed it from bfdd only).
  test('a reload during a pass: the removed peer is not configured again nor put back in states or metrics', async () => {
    const t = setup();
    const ROUTER2 = '198.18.2.2';
    t.bfd.start();
    await t.bfd.setPeers([...config.peers, { address: ROUTER2, localAddress: '198.18.2.11' }]);
    await t.clock.advance(1_000);
    t.bfd.setDataPlaneHealthy(true);
    await t.clock.advance(0);
    expect(t.bfd.states()).toEqual({ [ROUTER]: 'up', [ROUTER2]: 'up' });
    const slow = t.fake.hold(ROUTER);
    t.bfd.setDataPlaneHealthy(false); // a pass: AdminDown for both, ROUTER's configure is slow
    await slow.entered;
    const reload = t.bfd.setPeers(config.peers); // ROUTER2 removed meanwhile
    slow.release();
    await reload;
    await t.clock.advance(1_000);
    expect([...t.fake.sessions.keys()]).toEqual([ROUTER]);
    expect(t.bfd.states()).toEqual({ [ROUTER]: 'shutdown' });
    const series = async (name: string) =>
      (await t.metrics.registry.getSingleMetric(name)?.get())?.values.map((v) => v.labels.peer);
    expect(await series('l4fleet_bfd_session_up')).toEqual([ROUTER]);
    expect(await series('l4fleet_bfd_admin_down')).toEqual([ROUTER]);
    t.bfd.close();
  });

  test('disabled: bfdd is never asked', async () => {
    const t = setup({ ...config, enabled: false });
    t.bfd.start();
    t.bfd.setDataPlaneHealthy(false);
    await t.clock.advance(5_000);
    expect(t.fake.calls).toEqual([]);
    expect(t.bfd.states()).toEqual({});
  });
});

// A failure bfdd repeats at every poll (1 s) was logged at every poll: 86,400 warn lines a day per peer for one
// refused removal. Now: at once when it starts or its message changes, then once a minute with the count held back.
describe('bfd controller - a failure repeated at every poll', () => {
  const REFUSED = 'vtysh: % Configuration failed. Error type: validation';
  const WARN = 40;
  const INFO = 30;

  test('a session on another local address bfdd will not remove: one warn, then one a minute with the repeats', async () => {
    const t = setup();
    t.fake.seed(OTHER_LOCAL);
    t.fake.setRefuseRemove(REFUSED);
    t.bfd.start();
    await t.clock.advance(0);
    for (let i = 0; i < 60; i++) await t.clock.advance(1_000); // 61 polls, 0 s .. 60 s
    expect(t.fake.calls.filter((c) => c.peer === `-${ROUTER}`)).toHaveLength(61); // still tried at every poll
    expect(t.logged('bfdReplaceFailed')).toEqual([
      { level: WARN, peer: ROUTER, err: REFUSED, repeated: undefined, failure: undefined },
      { level: WARN, peer: ROUTER, err: REFUSED, repeated: 59, failure: undefined },
    ]);
    expect(await t.metric('l4fleet_bfd_session_up')).toBe(0); // unknown is not up, as before
    await t.clock.advance(1_000); // held back
    // Another message is another failure: logged at the next poll, with the repeats of the one before it.
    t.fake.setRefuseRemove('vtysh: bfdd timed out');
    await t.clock.advance(1_000);
    expect(t.logged('bfdReplaceFailed')).toHaveLength(3);
    expect(t.logged('bfdReplaceFailed')[2]).toMatchObject({ err: 'vtysh: bfdd timed out', repeated: undefined });
    expect(t.logs.filter((l) => l.event === 'bfdReplaceFailed')[2]?.previous).toEqual({ err: REFUSED, repeated: 1 });
    await t.clock.advance(1_000); // held back
    expect(t.logged('bfdReplaceFailed')).toHaveLength(3);
    // bfdd removes it: the failure clears with one info line, and the replacement is logged as before.
    t.fake.setRefuseRemove(undefined);
    await t.clock.advance(1_000);
    expect(t.logged('bfdFailureCleared')).toEqual([
      { level: INFO, peer: ROUTER, err: undefined, repeated: 1, failure: 'bfdReplaceFailed' },
    ]);
    expect(t.logged('bfdPeerReplaced')).toHaveLength(1);
    expect(t.fake.sessions.get(ROUTER)?.local).toBe(LOCAL);
    await t.clock.advance(1_000); // the next poll reads the new session
    expect(t.bfd.states()).toEqual({ [ROUTER]: 'up' });
    expect(t.logged('bfdFailureCleared')).toHaveLength(1);
    t.bfd.close();
  });

  test('a failure that clears and comes back is logged at once', async () => {
    const t = setup();
    t.fake.seed(OTHER_LOCAL);
    t.fake.setRefuseRemove(REFUSED);
    t.bfd.start();
    await t.clock.advance(0);
    await t.clock.advance(1_000);
    t.fake.setRefuseRemove(undefined);
    await t.clock.advance(1_000);
    expect(t.fake.sessions.get(ROUTER)?.local).toBe(LOCAL);
    t.fake.setRefuseRemove(REFUSED);
    await t.bfd.setPeers([{ address: ROUTER, localAddress: OTHER_LOCAL }]); // to be replaced again, refused again
    await t.clock.advance(1_000);
    expect(t.logged('bfdReplaceFailed').map((l) => l.repeated)).toEqual([undefined, undefined]);
    t.bfd.close();
  });

  test('a removal bfdd keeps refusing: one warn, then one a minute', async () => {
    const t = setup();
    t.bfd.start();
    await t.clock.advance(1_000);
    t.fake.setRefuseRemove(REFUSED);
    await t.bfd.setPeers([]);
    for (let i = 0; i < 60; i++) await t.clock.advance(1_000);
    expect(t.logged('bfdRemoveFailed').map((l) => [l.level, l.repeated])).toEqual([
      [WARN, undefined],
      [WARN, 59],
    ]);
    t.fake.setRefuseRemove(undefined);
    await t.clock.advance(1_000);
    expect(t.logged('bfdFailureCleared')).toMatchObject([{ peer: ROUTER, failure: 'bfdRemoveFailed' }]);
    expect(t.fake.sessions.has(ROUTER)).toBe(false);
    t.bfd.close();
  });

  test('a configure bfdd keeps refusing: one warn, then one a minute', async () => {
    const t = setup();
    t.fake.setRefuseConfigure(true);
    t.bfd.start();
    await t.clock.advance(0);
    for (let i = 0; i < 60; i++) await t.clock.advance(1_000);
    expect(t.logged('bfdConfigureFailed').map((l) => [l.level, l.repeated])).toEqual([
      [WARN, undefined],
      [WARN, 59],
    ]);
    t.fake.setRefuseConfigure(false);
    await t.clock.advance(1_000);
    expect(t.logged('bfdFailureCleared')).toMatchObject([{ peer: ROUTER, failure: 'bfdConfigureFailed', repeated: 0 }]);
    expect(t.logged('bfdPeerConfigured')).toHaveLength(1);
    t.bfd.close();
  });
});

describe('bfd controller - a failure that ends without the retry succeeding', () => {
  const REFUSED = 'vtysh: % Configuration failed. Error type: validation';
  const WARN = 40;

  test('a removal refused, then bfdd lists no session for the peer: the failure clears (removed, nothing to send)', async () => {
    const t = setup();
    t.bfd.start();
    await t.clock.advance(1_000);
    t.fake.setRefuseRemove(REFUSED);
    await t.bfd.setPeers([]);
    expect(t.logged('bfdRemoveFailed')).toHaveLength(1);
    t.fake.sessions.delete(ROUTER); // bfdd restarted without it
    await t.clock.advance(1_000);
    expect(t.logged('bfdFailureCleared')).toMatchObject([{ peer: ROUTER, failure: 'bfdRemoveFailed', repeated: 0 }]);
    expect(t.logged('bfdPeerRemoved')).toHaveLength(1);
    t.bfd.close();
  });

  test('a replacement refused, then the session on the old local address is gone: the failure clears', async () => {
    const t = setup();
    t.fake.seed(OTHER_LOCAL);
    t.fake.setRefuseRemove(REFUSED);
    t.bfd.start();
    await t.clock.advance(0);
    expect(t.logged('bfdReplaceFailed')).toHaveLength(1);
    t.fake.sessions.delete(ROUTER); // bfdd dropped the old one (restarted)
    await t.clock.advance(1_000);
    expect(t.logged('bfdFailureCleared')).toMatchObject([{ peer: ROUTER, failure: 'bfdReplaceFailed', repeated: 0 }]);
    expect(t.fake.sessions.get(ROUTER)?.local).toBe(LOCAL); // made on the wanted address
    t.bfd.close();
  });

  test('a removal refused, the peer put back, then removed again with the same refusal: a fresh warn line', async () => {
    const t = setup();
    t.bfd.start();
    await t.clock.advance(1_000);
    t.fake.setRefuseRemove(REFUSED);
    await t.bfd.setPeers([]);
    await t.bfd.setPeers(config.peers); // the queued removal is dropped, and its failure with it
    await t.bfd.setPeers([]);
    expect(t.logged('bfdRemoveFailed').map((l) => [l.level, l.repeated])).toEqual([
      [WARN, undefined],
      [WARN, undefined],
    ]);
    t.bfd.close();
  });

  test('a replacement refused, the peer taken out, then put back with the same refusal: a fresh warn line', async () => {
    const t = setup();
    t.fake.seed(OTHER_LOCAL);
    t.fake.setRefuseRemove(REFUSED);
    t.bfd.start();
    await t.clock.advance(0);
    await t.bfd.setPeers([]); // its failures are no one's concern any more (the removal is refused too)
    await t.bfd.setPeers(config.peers);
    expect(t.logged('bfdReplaceFailed').map((l) => [l.level, l.repeated])).toEqual([
      [WARN, undefined],
      [WARN, undefined],
    ]);
    t.bfd.close();
  });

  test('a configure refused, the peer taken out, then put back with the same refusal: a fresh warn line', async () => {
    const t = setup();
    t.fake.setRefuseConfigure(true);
    t.bfd.start();
    await t.clock.advance(0);
    await t.bfd.setPeers([]); // its failures are no one's concern any more
    await t.bfd.setPeers(config.peers);
    expect(t.logged('bfdConfigureFailed').map((l) => [l.level, l.repeated])).toEqual([
      [WARN, undefined],
      [WARN, undefined],
    ]);
    t.bfd.close();
  });
});

describe('bfd controller - bfdd prints addresses its own way', () => {
  // FRR's inet_ntop writes an IPv4-compatible address dotted (`::198.18.0.11`) where the config writes `::c612:b`:
  // compared as printed, the session's local address never matched and the session was replaced at every poll.
  test('a session bfdd lists in another spelling of the same addresses is kept, not replaced at each poll', async () => {
    const peer = { address: '2001:db8:2::1', localAddress: '2001:db8:2::11' };
    const t = setup({ ...config, peers: [peer] });
    const spelled = (a: string) => a.replace('2001:db8:2::', '2001:DB8:2:0:0:0:0:');
    const sessions = t.fake.bfdd.sessions;
    t.fake.bfdd.sessions = async () =>
      (await sessions()).map((s) => ({ ...s, peer: spelled(s.peer), ...(s.local ? { local: spelled(s.local) } : {}) }));
    t.bfd.start();
    for (let i = 0; i < 4; i++) await t.clock.advance(1_000);
    expect(t.fake.calls.filter((c) => c.peer.startsWith('-'))).toEqual([]);
    expect(t.logged('bfdPeerReplaced')).toEqual([]);
    expect(t.fake.calls).toHaveLength(1);
    t.bfd.close();
  });
});
