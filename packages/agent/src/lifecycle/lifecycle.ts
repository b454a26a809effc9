/**
 * Drives the node's lifecycle (node-state.ts is the pure transition table) from the agent's wishes: ready once all
 * inputs are known, drain when the operator's flag or a local drain (SIGTERM) asks for it, drained after the RFC 8326
 * graceful-shutdown window. The window runs from when gobgpd took the routes carrying GRACEFUL_SHUTDOWN
 * (drainAnnounced; a set the speaker deferred while gobgpd was away does not count), not from the state change: a pass
 * or verify still running (a slow data plane apply or read-back) would otherwise use up the window, and the next pass
 * would withdraw without the router ever seeing the community. Also holds readiness: the first pass that programmed the
 * data plane.
 */
import type { Logger } from 'pino';
import { type Clock, withTimeout } from '../clock.js';
import type { AgentMetrics } from '../observe/metrics.js';
import type { ServedInputs } from '../serve/inputs.js';
import { mayAnnounce, type NodeEvent, type NodeState, nextNodeState } from './node-state.js';

/** How long whenReady() waits by default, ms. */
export const READY_TIMEOUT_MS = 30_000;
/** How often shutdown() looks whether the graceful-shutdown window is over, ms. */
const DRAIN_POLL_MS = 50;
/**
 * A drain whose GRACEFUL_SHUTDOWN gobgpd has not taken (it refused the set, or was away and the set is pending) starts
 * its window this long after its first draining pass began anyway, so a drain (and the SIGTERM path) always ends, ms.
 * Counted from that pass, not from the state change: the fallback is for a set handed to gobgpd and not confirmed, not
 * for one never sent. A pass or a periodic verify still holding the reconciler's queue (an nftables verify that repairs
 * drift takes ~1 s per 65,537-slot VIP) would otherwise use it up, the window would run out behind it, and the queued
 * pass would read 'withdrawn' and withdraw without any router seeing the community.
 */
export const DRAIN_ANNOUNCE_WAIT_MS = 5_000;
/**
 * The cap on waiting for that first draining pass, ms: past it the fallback runs as if the pass had begun, so the drain
 * (the SIGTERM path) ends inside the stop budget (config/stop-budget.ts). The queue is held only by data-plane calls,
 * each exec bounded by its own deadline, but not by this cap: a streamed nft write may take 30 s plus 1 us per
 * character (a first apply of 40 default-size VIPs ~13 s quiet, longer under load). A call that holds the queue past
 * this cap and the graceful window after it leaves the queued pass to read 'withdrawn': the routes are withdrawn
 * without GRACEFUL_SHUTDOWN (logged as drainPassTimeout before it), a plain withdrawal rather than a stop SIGKILLed
 * mid-drain by the unit's TimeoutStopSec.
 */
export const DRAIN_PASS_WAIT_MAX_MS = 30_000;

export type RouteMode = 'serving' | 'draining' | 'withdrawn';

export interface LifecycleOptions {
  readonly node: string;
  readonly inputs: ServedInputs;
  readonly clock: Clock;
  /** How long a drain announces GRACEFUL_SHUTDOWN before withdrawing (bgp.gracefulShutdownMs), ms. */
  readonly gracefulShutdownMs: number;
  readonly metrics: AgentMetrics;
  readonly logger: Logger;
  /** The state changed (event, reconcile pass). */
  readonly onTransition: (state: NodeState, previous: NodeState, reason: string | undefined) => void;
}

export interface Lifecycle {
  readonly state: NodeState;
  readonly ready: boolean;
  /** What the routes should do in this state. */
  routeMode(): RouteMode;
  /** While starting: become ready once all inputs are known (a restart never builds tables from partial inputs). */
  maybeReady(): void;
  /** The operator's drain flag may have changed: drain or undrain to match it (or become ready, while starting). */
  followDrainWish(): void;
  /** A local drain (tests, `agent.drain()`): true drains, false gives the decision back to the operator's flag. */
  setLocalDrain(drain: boolean): void;
  /** SIGTERM: drain locally; a node that is not serving (or starting) stays as it is. */
  beginShutdown(): void;
  /**
   * gobgpd took the draining set (GRACEFUL_SHUTDOWN): the graceful window starts. Called by the reconciler only once
   * the speaker confirmed it (routesPending false), not when the set was merely handed over while gobgpd was away: a
   * deferred set never reached a router, so a window started then would run out unseen (DRAIN_ANNOUNCE_WAIT_MS is the
   * fallback when it never goes out).
   */
  drainAnnounced(): void;
  /**
   * A draining pass began (it sends the GRACEFUL_SHUTDOWN set first thing): the DRAIN_ANNOUNCE_WAIT_MS fallback starts
   * from the first of a drain.
   */
  drainPassBegan(): void;
  /** Resolves once the graceful-shutdown window of a drain is over (at once if not draining). */
  drained(): Promise<void>;
  stop(reason: string): void;
  /** Stops the graceful-shutdown timer (the agent is closing). */
  close(): void;
  /** The agent closed: stopping (unless it was already), then stopped, without touching routes; both reported. */
  stopped(): void;
  /** A pass programmed the data plane: the node is ready. */
  markReady(): boolean;
  whenReady(timeoutMs?: number): Promise<void>;
}

export function createLifecycle(opts: LifecycleOptions): Lifecycle {
  const { inputs, clock, metrics } = opts;
  const log = opts.logger;
  let state: NodeState = 'starting';
  let localDrain = false;
  let drainTimer: unknown;
  /** The graceful window of the current drain runs (its timer ends it); false while waiting for the announcement. */
  let windowStarted = false;
  /** The window was started by the fallback, before the community went out: its announcement restarts it, once. */
  let windowEarly = false;
  /** This drain's first draining pass began: the DRAIN_ANNOUNCE_WAIT_MS fallback runs (drainTimer). */
  let passBegan = false;
  let ready = false;
  const readyWaiters: (() => void)[] = [];
  metrics.setNodeState(state);

  const transition = (ev: NodeEvent, reason?: string): void => {
    const previous = state;
    state = nextNodeState(state, ev);
    if (state === previous) return;
    metrics.setNodeState(state);
    log.info({ event: 'nodeState', state, previous, reason });
    clock.clearTimeout(drainTimer);
    windowStarted = false;
    windowEarly = false;
    passBegan = false;
    if (state === 'draining') {
      drainTimer = clock.setTimeout(() => fallback('drainPassTimeout', DRAIN_PASS_WAIT_MAX_MS), DRAIN_PASS_WAIT_MAX_MS);
    }
    opts.onTransition(state, previous, reason);
  };

  /** The window starts before the announcement: a late announcement restarts it (drainAnnounced), once. */
  const fallback = (event: string, waitedMs: number): void => {
    log.warn({ event, waitedMs });
    startWindow();
    windowEarly = true;
  };

  const startWindow = (): void => {
    if (state !== 'draining' || windowStarted) return;
    windowStarted = true;
    clock.clearTimeout(drainTimer);
    drainTimer = clock.setTimeout(() => {
      transition({ type: 'drained' }, 'gracefulShutdownElapsed');
    }, opts.gracefulShutdownMs);
  };

  const wantDrained = (): boolean => inputs.drainFlag || localDrain;

  const maybeReady = (): void => {
    if (state !== 'starting' || !inputs.complete) return;
    transition({ type: 'ready', drained: wantDrained() }, wantDrained() ? 'drainFlagSet' : undefined);
  };

  const applyDrainWish = (): void => {
    if (state === 'starting') {
      maybeReady();
      return;
    }
    if (wantDrained()) transition({ type: 'drain' }, localDrain ? 'local' : 'operator');
    else transition({ type: 'undrain' }, 'operator');
  };

  return {
    get state() {
      return state;
    },
    get ready() {
      return ready;
    },
    routeMode: () => (mayAnnounce(state) ? 'serving' : state === 'draining' ? 'draining' : 'withdrawn'),
    maybeReady,
    followDrainWish: applyDrainWish,
    setLocalDrain(drain) {
      localDrain = drain;
      applyDrainWish();
    },
    beginShutdown() {
      localDrain = true;
      if (state === 'serving' || state === 'starting') applyDrainWish();
    },
    drainAnnounced() {
      // Announced after the fallback started the window (a pass slower than DRAIN_ANNOUNCE_WAIT_MS ran before it):
      // the routers get the whole window from now, not what the fallback left of it.
      if (windowEarly && state === 'draining') {
        windowEarly = false;
        windowStarted = false;
        log.info({ event: 'drainAnnouncedLate', windowMs: opts.gracefulShutdownMs });
      }
      startWindow();
    },
    drainPassBegan() {
      if (state !== 'draining' || passBegan || windowStarted) return;
      passBegan = true;
      clock.clearTimeout(drainTimer);
      drainTimer = clock.setTimeout(
        () => fallback('drainAnnounceTimeout', DRAIN_ANNOUNCE_WAIT_MS),
        DRAIN_ANNOUNCE_WAIT_MS,
      );
    },
    drained() {
      return new Promise<void>((resolve) => {
        const check = () => (state !== 'draining' ? resolve() : clock.setTimeout(check, DRAIN_POLL_MS));
        check();
      });
    },
    stop: (reason) => transition({ type: 'stop' }, reason),
    close() {
      clock.clearTimeout(drainTimer);
    },
    stopped() {
      transition({ type: 'stop' }, 'closed');
      transition({ type: 'stopped' }, 'closed');
    },
    markReady() {
      if (ready) return false;
      ready = true;
      for (const w of readyWaiters.splice(0)) w();
      return true;
    },
    whenReady(timeoutMs = READY_TIMEOUT_MS) {
      if (ready) return Promise.resolve();
      const waiting = new Promise<void>((resolve) => readyWaiters.push(resolve));
      return withTimeout(clock, waiting, timeoutMs, `node ${opts.node} ready`);
    },
  };
}
