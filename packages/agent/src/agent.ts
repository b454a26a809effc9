/**
 * The node agent: composes the store (desired state, decisions, drain flag), the health checker, the aggregator,
 * the reconciler (data plane, then BGP) and observability. Every dependency is passed in, so tests run it with the
 * in-memory store, the fake speaker and the recording data plane.
 */
import type { Speaker } from '@l4fleet/bgp';
import type { Fleet, MemberStatus } from '@l4fleet/config';
import type { DataPlane } from '@l4fleet/dataplane';
import type { FleetStore, NodeRegistration, NodeStatusReport, Watch } from '@l4fleet/store';
import type { Logger } from 'pino';
import { type Aggregator, createAggregator } from './aggregate/aggregator.js';
import { type Clock, sleep, systemClock } from './clock.js';
import type { AgentConfig } from './config/types.js';
import { AgentError } from './errors.js';
import type { NatsLink } from './events/nats-link.js';
import { createEventPublisher, type EventPublisher } from './events/publisher.js';
import { type AgentEvent, eventFilter } from './events/subjects.js';
import { createHealthChecker, type HealthChecker } from './health/checker.js';
import type { ObservedStatus } from './health/hysteresis.js';
import type { Probe } from './health/probe.js';
import { mayAnnounce, type NodeEvent, type NodeState, nextNodeState } from './lifecycle/node-state.js';
import { type AgentMetrics, createAgentMetrics } from './observe/metrics.js';
import type { LastState, LastStateStore } from './persist/last-state.js';
import { checkedMembers, healthTargets } from './serve/plan.js';
import { createReconciler, type Reconciler, type ServedState } from './serve/reconciler.js';

/** How often the agent checks that etcd answers (fail-static detection), ms. */
export const ETCD_PROBE_INTERVAL_MS = 1_000;
/** Health reports to etcd are batched this long, ms (one write for a burst of changes). */
export const HEALTH_REPORT_DELAY_MS = 20;
/** Status record writes are batched this long, ms. */
export const STATUS_REPORT_DELAY_MS = 100;
/** State file writes are batched this long, ms (a burst of decisions is one write). */
export const STATE_SAVE_DELAY_MS = 1_000;
/** An unchanged state file is rewritten this often while etcd answers, so its age says "confirmed recently", ms. */
export const STATE_REFRESH_MS = 3_600_000;
const RETRY_MS = 1_000;

export interface AgentDeps {
  readonly config: AgentConfig;
  readonly store: FleetStore;
  readonly speaker: Speaker;
  readonly dataPlane: DataPlane;
  readonly logger: Logger;
  /** NATS for events and fast health reports; undefined: events are counted as dropped, health goes by etcd. */
  readonly nats?: NatsLink;
  readonly clock?: Clock;
  readonly probe?: Probe;
  readonly metrics?: AgentMetrics;
  readonly version?: string;
  /** The last good inputs on disk; undefined: nothing saved, a start without etcd waits for etcd. */
  readonly lastState?: LastStateStore;
  /** Every event the agent emits, locally (tests). */
  readonly onEvent?: (e: AgentEvent) => void;
}

export interface AgentStatus {
  readonly node: string;
  readonly state: NodeState;
  readonly failStatic: boolean;
  readonly etcdConnected: boolean;
  readonly ready: boolean;
  readonly aggregator: boolean;
  readonly desiredRevision: number;
  readonly tables: Readonly<Record<string, string>>;
  readonly announced: readonly string[];
  readonly routes: readonly string[];
  readonly decided: Readonly<Record<string, MemberStatus>>;
  readonly observed: Readonly<Record<string, ObservedStatus>>;
  readonly bgp: Readonly<Record<string, string>>;
  /** Where the served inputs came from: etcd, the state file (restarted without etcd), or nothing yet. */
  readonly inputSource: 'etcd' | 'lastState' | 'none';
}

export interface Agent {
  /** Registers the node and starts watching; the node serves once the first desired state arrived (whenReady). */
  start(): Promise<void>;
  /** Resolves when the data plane holds the desired state and routes were set once; rejects after timeoutMs. */
  whenReady(timeoutMs?: number): Promise<void>;
  /** Local drain (SIGTERM path or tests); the operator's drain is the etcd flag (`l4fleet node drain`). */
  drain(): Promise<void>;
  undrain(): Promise<void>;
  /** SIGTERM: drain (graceful shutdown, withdraw), keep forwarding forwardAfterWithdrawMs, then close. */
  shutdown(): Promise<void>;
  /** Stops without touching routes or forwarding (a crash or restart looks the same to the fleet). */
  close(): Promise<void>;
  /** Asks for a reconcile pass and waits for it (tests, after injecting a change). */
  reconcile(): Promise<void>;
  status(): AgentStatus;
  readonly metrics: AgentMetrics;
  readonly events: EventPublisher;
}

export function createAgent(deps: AgentDeps): Agent {
  const { config, store, speaker, dataPlane } = deps;
  const node = config.node.name;
  const clock = deps.clock ?? systemClock;
  const log = deps.logger.child({ component: 'agent', node });
  const metrics = deps.metrics ?? createAgentMetrics({ node, fleet: config.fleet });
  const natsPrefix = config.nats.subjectPrefix;

  let state: NodeState = 'starting';
  let fleet: Fleet | undefined;
  let revision = 0;
  let generation = '';
  let decided: ReadonlyMap<string, MemberStatus> = new Map();
  let haveDecided = false;
  let haveNodes = false;
  let drainFlag = false;
  let localDrain = false;
  let etcdOk = true;
  let failStatic = false;
  let ready = false;
  let closed = false;
  let drainTimer: unknown;
  let healthTimer: unknown;
  let statusTimer: unknown;
  let probeTimer: unknown;
  let registration: NodeRegistration | undefined;
  const watches: Watch[] = [];
  const bgp: Record<string, string> = {};
  const readyWaiters: (() => void)[] = [];
  let healthWriting = false;
  // Last good inputs on disk: which inputs came from etcd since the start (only those are saved).
  const fromEtcd = { desired: false, decided: false, nodes: false };
  let servingLastState = false;
  let restoreTried = false;
  let stateTimer: unknown;
  let stateSaving = false;
  let savedKey = '';
  let savedAtMs = 0;
  let onRestored: () => void = () => undefined;
  const restored = new Promise<void>((resolve) => (onRestored = resolve));

  const events = createEventPublisher({
    prefix: natsPrefix,
    fleet: config.fleet,
    node,
    maxPending: config.nats.maxPendingEvents,
    logger: log,
    now: () => clock.now(),
    ...(deps.onEvent ? { onEvent: deps.onEvent } : {}),
  });
  if (deps.nats) events.setTransport(deps.nats);
  metrics.setNodeState(state);
  metrics.etcdConnected.set(1);
  metrics.setDataPlaneSource(() => dataPlane.counters());

  const aggregator: Aggregator = createAggregator({
    node,
    store,
    logger: log,
    clock,
    leaseTtlS: config.etcd.leaseTtlS,
    onLeadership: (l) => metrics.aggregatorLeader.set(l ? 1 : 0),
    onDecisionsWritten: (n) => metrics.decisionsWrittenTotal.inc(n),
  });

  const checker: HealthChecker = createHealthChecker({
    logger: log.child({ component: 'health' }),
    clock,
    maxConcurrentProbes: config.health.maxConcurrentProbes,
    ...(deps.probe ? { probe: deps.probe } : {}),
    ...(config.health.sourceAddress ? { sourceAddress: config.health.sourceAddress } : {}),
    onObservation(o) {
      metrics.probesTotal.inc({ result: o.result.ok ? 'ok' : 'fail' });
      events.emit('member.health', {
        member: o.key,
        observed: o.status,
        changed: o.changed,
        ok: o.result.ok,
        latencyMs: Math.round(o.result.latencyMs * 10) / 10,
        ...(o.result.reason ? { reason: o.result.reason } : {}),
      });
      if (!o.changed) return;
      metrics.memberObserved.set({ member: o.key }, o.status === 'up' ? 1 : o.status === 'down' ? 0 : -1);
      aggregator.observe(node, o.key, o.status);
      scheduleHealthReport();
    },
  });

  const routeMode = (): 'serving' | 'draining' | 'withdrawn' =>
    mayAnnounce(state) ? 'serving' : state === 'draining' ? 'draining' : 'withdrawn';

  const reconciler: Reconciler = createReconciler({
    inputs: () => ({ fleet, revision, decided, routeMode: routeMode() }),
    dataPlane,
    speaker,
    routeContext: {
      nextHop4: config.node.address,
      ...(config.node.address6 ? { nextHop6: config.node.address6 } : {}),
      communities: config.bgp.communities,
    },
    events,
    metrics,
    logger: log,
    clock,
    onServedChange: (s) => {
      if (s.applied && !ready) {
        ready = true;
        log.info({ event: 'nodeReady', revision: s.appliedRevision, vips: s.tables.length });
        for (const w of readyWaiters.splice(0)) w();
      }
      scheduleStatusReport();
    },
  });

  // ---- lifecycle --------------------------------------------------------------------------------------------
  const transition = (ev: NodeEvent, reason?: string): void => {
    const previous = state;
    state = nextNodeState(state, ev);
    if (state === previous) return;
    metrics.setNodeState(state);
    log.info({ event: 'nodeState', state, previous, reason });
    events.emit('node.state', { state, previous, failStatic, ...(reason ? { reason } : {}) });
    if (state === 'draining') {
      clock.clearTimeout(drainTimer);
      drainTimer = clock.setTimeout(() => {
        transition({ type: 'drained' }, 'gracefulShutdownElapsed');
      }, config.bgp.gracefulShutdownMs);
    }
    void reconciler.request();
  };

  const wantDrained = (): boolean => drainFlag || localDrain;

  const maybeReady = (): void => {
    if (state !== 'starting' || !fleet || !haveDecided || !haveNodes) return;
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

  // ---- fail-static ------------------------------------------------------------------------------------------
  const setEtcdOk = (ok: boolean, why: string): void => {
    if (ok === etcdOk) return;
    etcdOk = ok;
    metrics.etcdConnected.set(ok ? 1 : 0);
    const fs = !ok;
    if (fs !== failStatic) {
      failStatic = fs;
      metrics.failStatic.set(fs ? 1 : 0);
      if (fs) log.warn({ event: 'failStaticEntered', reason: why, revision });
      else log.info({ event: 'failStaticLeft', reason: why, revision });
      events.emit('node.state', { state, previous: state, failStatic, reason: why });
      scheduleStatusReport();
    }
    if (!ok && state === 'starting' && !fleet) void restoreLastState(why);
  };

  // ---- last good state on disk ------------------------------------------------------------------------------
  /** Serves the state file when the agent starts without etcd; etcd's watches replace it input by input. */
  async function restoreLastState(why: string): Promise<void> {
    const file = deps.lastState;
    if (!file || restoreTried || closed) return;
    restoreTried = true;
    let s: LastState | undefined;
    try {
      s = await file.load();
    } catch (err) {
      const code = (err as AgentError).code;
      log.error({ event: 'lastStateIgnored', file: file.path, code, err: (err as Error).message });
      return;
    }
    if (!s) {
      log.warn({ event: 'lastStateMissing', file: file.path, reason: why });
      return;
    }
    // etcd may have answered while the file was read: its inputs win.
    if (closed || state !== 'starting' || fleet) return;
    fleet = s.fleet;
    revision = s.revision;
    generation = s.generation;
    decided = s.decided;
    drainFlag = s.drained;
    haveDecided = true;
    haveNodes = true;
    servingLastState = true;
    const ageS = Math.max(0, Math.round((clock.now() - s.savedAt) / 1000));
    metrics.lastStateServing.set(1);
    metrics.lastStateAgeSeconds.set(ageS);
    for (const [m, st] of s.decided) metrics.memberDecided.set({ member: m }, st === 'up' ? 1 : 0);
    log.warn({
      event: 'lastStateRestored',
      file: file.path,
      revision,
      savedAt: new Date(s.savedAt).toISOString(),
      ageS,
      vips: s.fleet.vips.length,
      drained: s.drained,
      reason: why,
    });
    checker.setTargets(healthTargets(s.fleet));
    aggregator.setMembers(checkedMembers(s.fleet));
    maybeReady();
    onRestored();
  }

  /** Called after each etcd input: once all three came from etcd, the file is no longer what the node serves. */
  function etcdInputArrived(): void {
    if (!fromEtcd.desired || !fromEtcd.decided || !fromEtcd.nodes) return;
    if (servingLastState) {
      servingLastState = false;
      metrics.lastStateServing.set(0);
      metrics.lastStateAgeSeconds.set(0);
      log.info({ event: 'lastStateReplaced', revision });
    }
    scheduleStateSave();
  }

  function stateKey(): string {
    let k = `${revision}|${generation}|${drainFlag}`;
    for (const m of [...decided.keys()].sort()) k += `|${m}=${decided.get(m)}`;
    return k;
  }

  function scheduleStateSave(): void {
    if (!deps.lastState || stateTimer !== undefined || closed) return;
    stateTimer = clock.setTimeout(() => {
      stateTimer = undefined;
      void saveState();
    }, STATE_SAVE_DELAY_MS);
  }

  async function saveState(): Promise<void> {
    const file = deps.lastState;
    // Only inputs read from etcd are saved: re-saving the file's own inputs would make a stale file look fresh.
    if (!file || !fleet || revision === 0 || servingLastState || closed) return;
    if (!fromEtcd.desired || !fromEtcd.decided || !fromEtcd.nodes) return;
    if (stateSaving) {
      scheduleStateSave();
      return;
    }
    const key = stateKey();
    const now = clock.now();
    if (key === savedKey && now - savedAtMs < STATE_REFRESH_MS) return;
    stateSaving = true;
    try {
      const bytes = await file.save({ fleet, revision, generation, decided, drained: drainFlag, savedAt: now });
      savedKey = key;
      savedAtMs = now;
      metrics.lastStateSavesTotal.inc({ result: 'ok' });
      metrics.lastStateBytes.set(bytes);
      log.debug({ event: 'lastStateSaved', file: file.path, revision, bytes });
    } catch (err) {
      metrics.lastStateSavesTotal.inc({ result: 'error' });
      log.warn({ event: 'lastStateSaveFailed', file: file.path, err: (err as Error).message });
    } finally {
      stateSaving = false;
    }
  }

  const probeEtcd = async (): Promise<void> => {
    if (closed) return;
    try {
      await withTimeout(store.getLeader(), config.etcd.dialTimeoutMs, 'etcd probe');
      setEtcdOk(true, 'etcdAnswers');
      if (savedAtMs > 0 && clock.now() - savedAtMs >= STATE_REFRESH_MS) scheduleStateSave();
    } catch (err) {
      setEtcdOk(false, `etcdUnreachable: ${(err as Error).message}`);
    }
    if (!closed) probeTimer = clock.setTimeout(() => void probeEtcd(), ETCD_PROBE_INTERVAL_MS);
  };

  // ---- reports ----------------------------------------------------------------------------------------------
  function scheduleHealthReport(): void {
    if (healthTimer !== undefined || closed) return;
    healthTimer = clock.setTimeout(() => {
      healthTimer = undefined;
      void writeHealth();
    }, HEALTH_REPORT_DELAY_MS);
  }

  async function writeHealth(): Promise<void> {
    if (!registration || healthWriting) {
      if (healthWriting) scheduleHealthReport();
      return;
    }
    healthWriting = true;
    const view = new Map<string, MemberStatus>();
    for (const [k, s] of checker.observed()) if (s !== 'unknown') view.set(k, s);
    try {
      await registration.reportHealth(view);
    } catch (err) {
      log.warn({ event: 'healthReportFailed', err: (err as Error).message });
      clock.setTimeout(() => scheduleHealthReport(), RETRY_MS);
    } finally {
      healthWriting = false;
    }
  }

  function statusRecord(s: ServedState): NodeStatusReport {
    return {
      tables: Object.fromEntries(s.checksums),
      announced: s.announcedVips,
      bgp: { ...bgp },
      failStatic,
      desiredRevision: s.appliedRevision,
      at: new Date(clock.now()).toISOString(),
    };
  }

  function scheduleStatusReport(): void {
    if (statusTimer !== undefined || closed) return;
    statusTimer = clock.setTimeout(() => {
      statusTimer = undefined;
      const reg = registration;
      if (!reg) return;
      reg.reportStatus(statusRecord(reconciler.served)).catch((err: unknown) => {
        log.debug({ event: 'statusReportFailed', err: (err as Error).message });
        clock.setTimeout(() => scheduleStatusReport(), RETRY_MS);
      });
    }, STATUS_REPORT_DELAY_MS);
  }

  // ---- BGP session states -----------------------------------------------------------------------------------
  const followPeers = async (): Promise<void> => {
    try {
      for (const p of await speaker.peerStates()) {
        bgp[p.address] = p.state;
        metrics.setSessionState(p.address, p.state);
      }
    } catch {
      // gobgpd not there yet: events will tell
    }
    try {
      for await (const ev of speaker.peerEvents()) {
        if (closed) break;
        bgp[ev.address] = ev.state;
        metrics.setSessionState(ev.address, ev.state);
        log.info({ event: 'bgpSession', peer: ev.address, state: ev.state, previous: ev.previousState });
        scheduleStatusReport();
      }
    } catch (err) {
      if (!closed) log.warn({ event: 'bgpEventsEnded', err: (err as Error).message });
    }
  };

  const setupBgp = async (): Promise<void> => {
    while (!closed) {
      try {
        await speaker.ensureGlobal({
          asn: config.bgp.asn,
          routerId: config.bgp.routerId,
          listenPort: config.bgp.listenPort,
          ...(config.bgp.listenAddresses ? { listenAddresses: config.bgp.listenAddresses } : {}),
        });
        await speaker.setPeers(
          config.bgp.peers.map((p) => ({
            address: p.address,
            asn: p.asn,
            holdTimeS: p.holdTimeS,
            keepaliveS: p.keepaliveS,
            port: p.port,
            passive: p.passive,
            ...(p.password !== undefined ? { password: p.password } : {}),
            ...(p.localAddress !== undefined ? { localAddress: p.localAddress } : {}),
            ...(p.ebgpMultihopTtl !== undefined ? { ebgpMultihopTtl: p.ebgpMultihopTtl } : {}),
          })),
        );
        return;
      } catch (err) {
        const retryable = (err as { retryable?: boolean }).retryable === true;
        log.warn({ event: 'bgpSetupFailed', retryable, err: (err as Error).message });
        // The speaker keeps the desired global and peers and applies them when gobgpd answers.
        if (retryable) return;
        await sleep(clock, RETRY_MS * 5);
      }
    }
  };

  // ---- watches ----------------------------------------------------------------------------------------------
  const onDesired = (d: { fleet: Fleet; revision: number; generation: string }): void => {
    fleet = d.fleet;
    revision = d.revision;
    generation = d.generation;
    fromEtcd.desired = true;
    etcdInputArrived();
    log.info({ event: 'desiredState', revision, vips: d.fleet.vips.length, pools: d.fleet.pools.length });
    checker.setTargets(healthTargets(d.fleet));
    aggregator.setMembers(checkedMembers(d.fleet));
    if (state === 'starting') maybeReady();
    else void reconciler.request();
  };

  const startWatches = async (): Promise<void> => {
    watches.push(
      await store.watchDesired({
        onUpdate: (d) => onDesired(d),
        onError: (err) => {
          if (err.code === 'INVALID_STATE') {
            metrics.stateRejectedTotal.inc();
            log.error({ event: 'stateRejected', err: err.message, keptRevision: revision });
            events.emit('state.rejected', { error: err.message, code: err.code });
          } else {
            log.warn({ event: 'desiredWatchError', code: err.code, err: err.message });
            if (err.code === 'UNAVAILABLE' || err.code === 'TIMEOUT') setEtcdOk(false, 'desiredWatchUnavailable');
          }
        },
      }),
    );
    watches.push(
      await store.watchDecided({
        onUpdate: (d) => {
          decided = d.decided;
          haveDecided = true;
          fromEtcd.decided = true;
          etcdInputArrived();
          for (const [m, s] of d.decided) metrics.memberDecided.set({ member: m }, s === 'up' ? 1 : 0);
          aggregator.setDecided(d.decided);
          if (state === 'starting') maybeReady();
          else void reconciler.request();
        },
        onError: (err) => log.warn({ event: 'decidedWatchError', code: err.code, err: err.message }),
      }),
    );
    watches.push(
      await store.watchNodes({
        onUpdate: (views) => {
          haveNodes = true;
          aggregator.setLiveNodes(new Set(views.filter((v) => v.record !== undefined).map((v) => v.name)));
          const flag = views.find((v) => v.name === node)?.drained ?? false;
          if (flag !== drainFlag) {
            drainFlag = flag;
            log.info({ event: flag ? 'drainRequested' : 'undrainRequested', by: 'operator' });
          }
          fromEtcd.nodes = true;
          etcdInputArrived();
          applyDrainWish();
        },
        onError: (err) => log.warn({ event: 'nodesWatchError', code: err.code, err: err.message }),
      }),
    );
  };

  const register = async (): Promise<void> => {
    while (!closed) {
      try {
        registration = await store.registerNode(
          { name: node, address: config.node.address, ...(deps.version ? { version: deps.version } : {}) },
          {
            leaseTtlS: config.etcd.leaseTtlS,
            onLeaseLost: (err) => {
              log.warn({ event: 'leaseLost', err: err.message });
              setEtcdOk(false, 'leaseLost');
            },
            onReregistered: () => {
              log.info({ event: 'reregistered' });
              scheduleHealthReport();
              scheduleStatusReport();
            },
          },
        );
        setEtcdOk(true, 'registered');
        scheduleHealthReport();
        scheduleStatusReport();
        return;
      } catch (err) {
        setEtcdOk(false, 'registerFailed');
        log.warn({ event: 'registerFailed', err: (err as Error).message });
        await sleep(clock, RETRY_MS);
      }
    }
  };

  /** Registers, starts the watches, the NATS health subscription and the aggregator; retries until closed. */
  const connectEtcd = async (): Promise<void> => {
    await register();
    if (closed) return;
    while (!closed) {
      try {
        await startWatches();
        break;
      } catch (err) {
        for (const w of watches.splice(0)) await w.close().catch(() => undefined);
        setEtcdOk(false, 'watchFailed');
        log.warn({ event: 'watchStartFailed', err: (err as Error).message });
        await sleep(clock, RETRY_MS);
      }
    }
    if (closed) return;
    if (deps.nats) {
      deps.nats.subscribe(eventFilter(natsPrefix, config.fleet, { kind: 'member.health' }), (data) => {
        try {
          const ev = JSON.parse(new TextDecoder().decode(data)) as AgentEvent<'member.health'>;
          if (ev.node !== node && ev.data.changed)
            aggregator.observe(ev.node, ev.data.member, ev.data.observed as ObservedStatus);
        } catch {
          // not an agent event: ignore
        }
      });
    }
    aggregator.start();
    if (!deps.lastState) probeTimer = clock.setTimeout(() => void probeEtcd(), ETCD_PROBE_INTERVAL_MS);
  };

  return {
    async start() {
      log.info({ event: 'agentStarting', fleet: config.fleet, driver: config.dataplane.driver });
      void setupBgp();
      void followPeers();
      if (!deps.lastState) {
        await connectEtcd();
        return;
      }
      // With a state file, probe etcd at once: unreachable while starting means serve the file (fail-static).
      probeTimer = clock.setTimeout(() => void probeEtcd(), 0);
      const connected = connectEtcd().catch((err: unknown) => {
        log.error({ event: 'etcdConnectFailed', err: (err as Error).message });
      });
      await Promise.race([connected, restored]);
    },
    whenReady(timeoutMs = 30_000) {
      if (ready) return Promise.resolve();
      return withTimeout(new Promise<void>((resolve) => readyWaiters.push(resolve)), timeoutMs, `node ${node} ready`);
    },
    async drain() {
      localDrain = true;
      applyDrainWish();
      await reconciler.request();
    },
    async undrain() {
      localDrain = false;
      applyDrainWish();
      await reconciler.request();
    },
    async shutdown() {
      log.info({ event: 'shutdownStarted', state });
      localDrain = true;
      if (state === 'serving' || state === 'starting') applyDrainWish();
      if (state === 'draining') {
        await new Promise<void>((resolve) => {
          const check = () => (state !== 'draining' ? resolve() : clock.setTimeout(check, 50));
          check();
        });
      }
      await reconciler.request();
      log.info({ event: 'forwardingAfterWithdraw', ms: config.drain.forwardAfterWithdrawMs });
      await sleep(clock, config.drain.forwardAfterWithdrawMs);
      transition({ type: 'stop' }, 'sigterm');
      await this.close();
    },
    async close() {
      if (closed) return;
      closed = true;
      for (const t of [drainTimer, healthTimer, statusTimer, probeTimer, stateTimer]) clock.clearTimeout(t);
      checker.close();
      reconciler.close();
      await aggregator.close();
      for (const w of watches.splice(0)) await w.close().catch(() => undefined);
      await registration?.close().catch(() => undefined);
      state = nextNodeState(nextNodeState(state, { type: 'stop' }), { type: 'stopped' });
      metrics.setNodeState(state);
      log.info({ event: 'agentStopped' });
    },
    reconcile: () => reconciler.request(),
    status() {
      const s = reconciler.served;
      return {
        node,
        state,
        failStatic,
        etcdConnected: etcdOk,
        ready,
        aggregator: aggregator.isLeader,
        desiredRevision: s.appliedRevision,
        tables: Object.fromEntries(s.checksums),
        announced: s.announcedVips,
        routes: [...s.routes.keys()].sort(),
        decided: Object.fromEntries(decided),
        observed: Object.fromEntries(checker.observed()),
        bgp: { ...bgp },
        inputSource: servingLastState ? 'lastState' : fleet ? 'etcd' : 'none',
      };
    },
    metrics,
    events,
  };
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new AgentError('TIMEOUT', `${what}: no answer within ${ms} ms`)), ms);
    t.unref?.();
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (err: unknown) => {
        clearTimeout(t);
        reject(err);
      },
    );
  });
}
