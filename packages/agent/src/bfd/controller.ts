/**
 * The node's BFD sessions (RFC 5880/5881, single hop, towards the router), kept in the node's bfdd: configured from
 * agent.yaml, read every pollIntervalMs for the status record, `l4fleet status`, the `bfd.session` event and
 * `l4fleet_bfd_session_up{peer}`, and held AdminDown while the data plane fails (docs/design/0010-bfd.md "What BFD
 * follows"): a node that cannot take its tables must leave the router at once, not after its BGP hold time, and
 * come back when an apply succeeds. AdminDown (RFC 5880 §6.8.16) makes the router's session go down on the next
 * packet, with diagnostic "neighbor signaled session down", and bgpd drops the node's routes (RFC 5882 §4.3).
 */
import { canonicalAddress } from '@l4fleet/config';
import type { BfdPeer, BfdPeerState } from '@l4fleet/daemons';
import type { BfdSessionState } from '@l4fleet/store';
import { BFD_SESSION_STATES } from '@l4fleet/store';
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import type { BfdPeerSection, BfdSection } from '../config/types.js';
import type { EventPublisher } from '../events/publisher.js';
import type { AgentMetrics } from '../observe/metrics.js';
import type { Bfdd } from './bfdd.js';

export interface BfdControllerOptions {
  readonly config: BfdSection;
  readonly bfdd: Bfdd;
  readonly clock: Clock;
  readonly metrics: Pick<AgentMetrics, 'bfdSessionUp' | 'bfdAdminDown' | 'bfddReachable'>;
  readonly events: Pick<EventPublisher, 'emit'>;
  readonly logger: Logger;
  /** A session changed state (status record). */
  readonly onChange: () => void;
}

export interface BfdController {
  /** Configures the sessions and starts reading them. */
  start(): void;
  /** State per peer address, as bfdd last reported it; peers bfdd has no session for are left out. */
  states(): Record<string, BfdSessionState>;
  /**
   * What the agent knows of its data plane: false after a failed apply, true after a successful one. With
   * followDataPlane a change is acted on at once (not at the next poll).
   */
  setDataPlaneHealthy(ok: boolean): void;
  /**
   * A reload's peer list (config/reload.ts): new peers are configured, removed ones taken out of bfdd, with their
   * state and metric series, and one whose session runs on another local address replaced, in the next pass; resolves
   * when it ran. A peer whose removal is still queued (bfdd did not answer) and that the list has again keeps its
   * session when that runs on the wanted local address.
   */
  setPeers(peers: readonly BfdPeerSection[]): Promise<void>;
  /**
   * A reload's timers: every session is configured again with them in the next pass. bfdd changes a running
   * session's intervals with a Poll Sequence (RFC 5880 §6.8.3), so the session stays up; resolves when it ran.
   */
  setTimers(timers: BfdTimers): Promise<void>;
  /** Stops reading; the sessions stay as they are in bfdd (a restarted agent finds them). */
  close(): void;
}

/** The timers of every session the agent keeps (agent.yaml `bfd`). */
export type BfdTimers = Pick<BfdSection, 'receiveIntervalMs' | 'transmitIntervalMs' | 'detectMultiplier'>;

/**
 * How often a failure repeated at every poll is logged again (ms, steady clock). A session bfdd will not remove or
 * configure fails at every poll (1 s by default): logged each time, one peer made 86,400 warn lines a day.
 */
const REPEAT_LOG_MS = 60_000;

/** The failures a poll retries, as logged (the `event` of their warn line). */
type RetriedFailure = 'bfdReplaceFailed' | 'bfdRemoveFailed' | 'bfdConfigureFailed';

/** A failure last logged at `loggedMs` with message `err`; `held` repeats since were not logged. */
interface Failing {
  readonly err: string;
  readonly loggedMs: number;
  held: number;
}

const isState = (s: string): s is BfdSessionState => (BFD_SESSION_STATES as readonly string[]).includes(s);

/**
 * The local address bfdd runs `s` on, undefined when it reports none (bfdd leaves `local` out for a session without
 * one, e.g. one bgpd registered on an interface). The agent's own peers always have one: agent.yaml resolves every
 * peer's localAddress (the BGP peer's, else node.address or node.address6), so a session is compared only when
 * both are known, and both are canonical text (config addressField; bfdd prints with inet_ntop).
 */
const sessionLocal = (s: BfdPeerState): string | undefined => (s.local ? s.local : undefined);

/**
 * bfdd's addresses in the config's canonical text, so they compare as strings with agent.yaml's: FRR prints with its
 * own inet_ntop, which writes an IPv4-compatible address dotted (`::198.18.0.11`) where the config writes `::c612:b`;
 * compared as printed, such a session would be replaced at every poll. Text that does not parse is kept as it is.
 */
function canonicalSession(s: BfdPeerState): BfdPeerState {
  const canon = (text: string): string => {
    try {
      return canonicalAddress(text).address;
    } catch {
      return text;
    }
  };
  return { ...s, peer: canon(s.peer), ...(s.local ? { local: canon(s.local) } : {}) };
}

export function createBfdController(opts: BfdControllerOptions): BfdController {
  const { config, bfdd, clock, metrics, events } = opts;
  const log = opts.logger.child({ component: 'bfd' });
  let timers: BfdTimers = {
    receiveIntervalMs: config.receiveIntervalMs,
    transmitIntervalMs: config.transmitIntervalMs,
    detectMultiplier: config.detectMultiplier,
  };
  const toPeer = (p: BfdPeerSection): BfdPeer => ({ address: p.address, localAddress: p.localAddress, ...timers });
  let peers: BfdPeer[] = config.peers.map(toPeer);
  /**
   * Sessions a reload took out of agent.yaml, removed from bfdd by the next pass (passes never overlap). Keyed by the
   * peer address, as bfdd keys its single-hop sessions: `no peer X local-address ANY` deletes X's session whatever
   * its local address, so a removal must never outlive a reload that puts X back (the pass compares its local
   * address then).
   */
  const toRemove = new Map<string, BfdPeer>();
  const states = new Map<string, BfdSessionState>();
  /** undefined until the first apply: a starting agent leaves the admin state as it finds it. */
  let dataPlaneOk: boolean | undefined;
  /** Peers configured by this agent since it started (a restarted bfdd loses them: configured again). */
  const configured = new Set<string>();
  let reachable: boolean | undefined;
  let timer: unknown;
  let running: Promise<void> | undefined;
  let again = false;
  let closed = false;
  /**
   * Bumped by setPeers and setTimers. A pass that finds it changed after an await stops: its peer list is stale
   * (a removed peer would be configured and put back in states and metrics for good; a new timer would be marked
   * configured with the old one), and the change has already asked for the pass that follows.
   */
  let generation = 0;
  /** Failures a poll retries, per event and peer address (`event peer`), while they last. */
  const failing = new Map<string, Failing>();

  /**
   * Logs a failure the next poll retries: at warn when it starts or its message changes, then at most every
   * REPEAT_LOG_MS with `repeated`, the repeats held back since the last line. The metrics are not touched here:
   * every pass sets them as before.
   */
  const warnFailure = (
    event: RetriedFailure,
    peer: string,
    err: unknown,
    fields: Record<string, string> = {},
  ): void => {
    const key = `${event} ${peer}`;
    const message = (err as Error)?.message ?? String(err);
    const now = clock.monoMs();
    const f = failing.get(key);
    if (f !== undefined && f.err === message && now - f.loggedMs < REPEAT_LOG_MS) {
      f.held++;
      return;
    }
    // The repeats held back since the last line: of this message, or of the one it replaces (`previous`).
    const held =
      f === undefined || f.held === 0
        ? {}
        : f.err === message
          ? { repeated: f.held }
          : { previous: { err: f.err, repeated: f.held } };
    log.warn({ event, peer, ...fields, err: message, ...held });
    failing.set(key, { err: message, loggedMs: now, held: 0 });
  };

  /** `event` no longer fails for `peer`: one info line (with the repeats not logged yet) if it did. */
  const clearFailure = (event: RetriedFailure, peer: string): void => {
    const key = `${event} ${peer}`;
    const f = failing.get(key);
    if (f === undefined) return;
    failing.delete(key);
    log.info({ event: 'bfdFailureCleared', failure: event, peer, repeated: f.held });
  };

  /** `peer` left the list (or a queued removal of it was dropped): its failures are no one's concern any more. */
  const forgetFailures = (peer: string, events: readonly RetriedFailure[]): void => {
    for (const e of events) failing.delete(`${e} ${peer}`);
  };

  const wantShutdown = (): boolean | undefined =>
    !config.followDataPlane || dataPlaneOk === undefined ? undefined : !dataPlaneOk;

  const setState = (peer: string, state: BfdSessionState, reason?: string): void => {
    const previous = states.get(peer);
    states.set(peer, state);
    metrics.bfdSessionUp.set({ peer }, state === 'up' ? 1 : 0);
    if (previous === state) return;
    log.info({ event: 'bfdSession', peer, state, previous: previous ?? 'unknown', ...(reason ? { reason } : {}) });
    events.emit('bfd.session', { peer, state, previous: previous ?? 'unknown', ...(reason ? { reason } : {}) });
    opts.onChange();
  };

  /** bfdd has no session for `peer`: unknown is not up (docs/design/0010-bfd.md), so no state is claimed. */
  const forgetState = (peer: string): void => {
    metrics.bfdSessionUp.set({ peer }, 0);
    if (!states.delete(peer)) return;
    log.info({ event: 'bfdSessionGone', peer });
    opts.onChange();
  };

  const setReachable = (ok: boolean, err?: unknown): void => {
    metrics.bfddReachable.set(ok ? 1 : 0);
    if (ok === reachable) return;
    reachable = ok;
    if (ok) log.info({ event: 'bfddReachable', vtyDir: config.vtyDir });
    else log.warn({ event: 'bfddUnreachable', vtyDir: config.vtyDir, err: (err as Error)?.message });
  };

  /**
   * Removes `address`'s session from bfdd, named with the local address it runs on (bfdPeerRemoveCommands puts bfdd's
   * config back in step with it first); false when bfdd refused (logged by warnFailure, `event` naming why it was
   * removed; bfdReplaceFailed: a session on another local address than agent.yaml's that bfdd will not remove).
   */
  const removeSession = async (address: string, localAddress: string, event: RetriedFailure): Promise<boolean> => {
    try {
      await bfdd.remove({ address, localAddress });
      clearFailure(event, address);
      return true;
    } catch (err) {
      warnFailure(event, address, err, { localAddress }); // next pass again
      return false;
    }
  };

  /** One pass: read the sessions, configure what is missing, hold or lift AdminDown, publish the states. */
  const pass = async (): Promise<void> => {
    let sessions: Awaited<ReturnType<Bfdd['sessions']>>;
    try {
      sessions = (await bfdd.sessions()).map(canonicalSession);
      setReachable(true);
    } catch (err) {
      setReachable(false, err);
      // Unknown is not up: the record and the metric stop claiming a state bfdd no longer confirms.
      for (const peer of states.keys()) metrics.bfdSessionUp.set({ peer }, 0);
      if (states.size > 0) {
        states.clear();
        opts.onChange();
      }
      return;
    }
    const shutdown = wantShutdown();
    const started = generation;
    for (const [address, peer] of toRemove) {
      const s = sessions.find((x) => x.peer === address);
      // Gone already (bfdd restarted): nothing to send (`no peer` would succeed, but the re-sync line would create it).
      if (s !== undefined && !(await removeSession(address, sessionLocal(s) ?? peer.localAddress, 'bfdRemoveFailed'))) {
        continue;
      }
      if (s === undefined) clearFailure('bfdRemoveFailed', address);
      if (generation !== started) return; // a reload may have put it back meanwhile: the pass it asked for decides
      toRemove.delete(address);
      log.info({ event: 'bfdPeerRemoved', peer: address, localAddress: peer.localAddress });
    }
    for (const peer of peers) {
      if (generation !== started) return;
      let s = sessions.find((x) => x.peer === peer.address);
      const local = s === undefined ? undefined : sessionLocal(s);
      /** A replaced session that was AdminDown is made AdminDown while the data plane is not known yet. */
      let keepDown: true | undefined;
      if (s !== undefined && local !== undefined && local !== peer.localAddress) {
        // bfdd keys the session by the peer address only: configuring another local address over it succeeds and
        // changes nothing, so the session (made by an agent before a restart with another agent.yaml, or left by a
        // reload whose removal failed) would run on the wrong source for good. Replaced: removed, then made below.
        forgetState(peer.address);
        if (!(await removeSession(peer.address, local, 'bfdReplaceFailed'))) continue;
        if (generation !== started) return;
        log.info({ event: 'bfdPeerReplaced', peer: peer.address, from: local, localAddress: peer.localAddress });
        configured.delete(peer.address);
        if (s.status === 'shutdown') keepDown = true;
        s = undefined;
      } else {
        clearFailure('bfdReplaceFailed', peer.address); // none to replace (any more): bfdd dropped the old one
      }
      if (s === undefined) forgetState(peer.address);
      const adminDown = s?.status === 'shutdown';
      const fix = shutdown !== undefined && s !== undefined && adminDown !== shutdown;
      if (s !== undefined && configured.has(peer.address) && !fix) {
        if (isState(s.status)) setState(peer.address, s.status);
        continue;
      }
      // New to this agent (configure once: timers from agent.yaml), gone from bfdd (restarted), or the admin state to change.
      try {
        await bfdd.configure(peer, shutdown ?? keepDown);
      } catch (err) {
        warnFailure('bfdConfigureFailed', peer.address, err);
        continue;
      }
      clearFailure('bfdConfigureFailed', peer.address);
      // A reload ran meanwhile: this peer may be gone (its removal is queued for the next pass) or have new timers.
      if (generation !== started) return;
      configured.add(peer.address);
      if (shutdown !== undefined) metrics.bfdAdminDown.set({ peer: peer.address }, shutdown ? 1 : 0);
      if (fix) {
        const reason = shutdown ? 'dataPlaneFailed' : 'dataPlaneRecovered';
        log.warn({ event: shutdown ? 'bfdAdminDown' : 'bfdAdminUp', peer: peer.address, reason });
        // AdminDown is immediate; a lifted session starts from Down (RFC 5880 §6.8.16) and the next read says more.
        setState(peer.address, shutdown ? 'shutdown' : 'down', reason);
      } else if (s === undefined) {
        log.info({ event: 'bfdPeerConfigured', peer: peer.address, localAddress: peer.localAddress });
      } else if (isState(s.status)) {
        setState(peer.address, s.status);
      }
    }
  };

  const schedule = (): void => {
    clock.clearTimeout(timer);
    if (!closed) timer = clock.setTimeout(() => void request(), config.pollIntervalMs);
  };

  /** Runs a pass now, or one more after the running one; passes never overlap. */
  const request = (): Promise<void> => {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        if (!closed) await pass();
      } while (again && !closed);
      running = undefined;
      schedule();
    })();
    return running;
  };

  return {
    start() {
      if (!config.enabled) return;
      for (const p of peers) metrics.bfdAdminDown.set({ peer: p.address }, 0);
      void request();
    },
    states: () => Object.fromEntries(states),
    setDataPlaneHealthy(ok) {
      if (ok === dataPlaneOk) return;
      dataPlaneOk = ok;
      if (config.enabled && config.followDataPlane) void request();
    },
    async setPeers(next) {
      const wanted = new Map(next.map((p) => [p.address, p.localAddress]));
      // A removal an earlier reload queued while bfdd did not answer, for a peer address this list keeps: dropped.
      // bfdd keys the session by the address only, so any `no peer X` deletes the one it has, which may be the very
      // session wanted (A -> B -> A): that would flap the router's BFD session and, with `neighbor X bfd`, drop the BGP
      // session and the node's routes. The pass compares bfdd's session with the wanted local address instead and
      // replaces it only when they differ; otherwise it configures it again (idempotent) with the current timers.
      for (const address of wanted.keys()) {
        if (toRemove.delete(address)) forgetFailures(address, ['bfdRemoveFailed']);
      }
      for (const p of peers) {
        if (wanted.has(p.address)) {
          // Another local address: the next pass finds the session on the old one and replaces it.
          if (wanted.get(p.address) !== p.localAddress) configured.delete(p.address);
          continue;
        }
        toRemove.set(p.address, p);
        forgetFailures(p.address, ['bfdReplaceFailed', 'bfdConfigureFailed']);
        configured.delete(p.address);
        states.delete(p.address);
        metrics.bfdSessionUp.remove({ peer: p.address });
        metrics.bfdAdminDown.remove({ peer: p.address });
      }
      const known = new Set(peers.map((p) => p.address));
      peers = next.map(toPeer);
      generation++;
      for (const p of peers) if (!known.has(p.address)) metrics.bfdAdminDown.set({ peer: p.address }, 0);
      opts.onChange();
      if (config.enabled && !closed) await request();
    },
    async setTimers(next) {
      const { receiveIntervalMs, transmitIntervalMs, detectMultiplier } = next;
      timers = { receiveIntervalMs, transmitIntervalMs, detectMultiplier };
      peers = peers.map((p) => ({ ...p, ...timers }));
      generation++;
      // Configured again (idempotent in bfdd: the same session, new intervals) by the next pass.
      configured.clear();
      log.info({ event: 'bfdTimersChanged', ...timers });
      if (config.enabled && !closed) await request();
    },
    close() {
      closed = true;
      clock.clearTimeout(timer);
    },
  };
}
