/**
 * The node agent: wires the controllers, each of which holds its own state: the served inputs, the lifecycle,
 * etcd (connection, fail-static, reports, rejected records), the state file, BGP sessions, the health checker, the
 * aggregator and the reconciler (data plane, then BGP). Every dependency is passed in, so tests run it with the
 * in-memory store, the fake speaker, the recording data plane and a manual clock.
 */
import type { Agent, AgentDeps, AgentStatusReport } from './agent-api.js';
import { createAgentEvents } from './agent-events.js';
import { createAggregator } from './aggregate/aggregator.js';
import { createVtyshBfdd } from './bfd/bfdd.js';
import { createBfdController } from './bfd/controller.js';
import { createBgpSessions } from './bgp/sessions.js';
import { systemClock } from './clock.js';
import { systemHost } from './config/host.js';
import { preflightProblems } from './config/preflight.js';
import { createReloader } from './config/reloader.js';
import { tlsFileDigests } from './config/tls-files.js';
import { createEtcdConnection } from './etcd/connection.js';
import { createDecidedFallback } from './etcd/decided-fallback.js';
import { createFailStatic, etcdProbeTimeoutMs } from './etcd/fail-static.js';
import { createRejectedRecords, isRejectedRecord } from './etcd/rejected-records.js';
import { createReports } from './etcd/reports.js';
import { followPeerHealth } from './events/peer-health.js';
import { createHealthChecker, probeFailuresReport } from './health/checker.js';
import { createLifecycle } from './lifecycle/lifecycle.js';
import { shutdownSequence } from './lifecycle/shutdown.js';
import { createAgentMetrics, recordDecided } from './observe/metrics.js';
import { createLastStateKeeper } from './persist/keeper.js';
import { createServedInputs } from './serve/inputs.js';
import { createPendingRamps } from './serve/pending-ramps.js';
import { checkedMembers, healthTargets } from './serve/plan.js';
import { createReconciler } from './serve/reconciler.js';

export type { Agent, AgentDeps, AgentStatus, AgentStatusReport } from './agent-api.js';

export function createAgent(deps: AgentDeps): Agent {
  const { config, store, speaker, dataPlane } = deps;
  const node = config.node.name;
  const clock = deps.clock ?? systemClock;
  // Each key bound once: pino writes a key bound twice twice in every line (the CLI's logger binds `node` already,
  // and each component its own `component`), and log pipelines with strict duplicate-field checks (Elasticsearch)
  // reject such lines. Components naming their own `component` get `base`; the agent's own lines say `agent`.
  const base = deps.logger.bindings().node === undefined ? deps.logger.child({ node }) : deps.logger;
  const log = base.child({ component: 'agent' });
  const metrics = deps.metrics ?? createAgentMetrics({ node, fleet: config.fleet });
  const natsPrefix = config.nats.subjectPrefix;
  let closed = false;
  /** shutdown() began: a reload is refused from then on. */
  let shuttingDown = false;

  const events = createAgentEvents(deps, clock, log);
  metrics.setDataPlaneSource(() => dataPlane.counters(), log);

  const inputs = createServedInputs();
  // Slow start of members the operator starts: held at the first step until the aggregator's ramp arrives.
  const pendingRamps = createPendingRamps({
    clock,
    onExpired: () => {
      if (lifecycle.state !== 'starting') void reconciler.request();
    },
  });
  const lifecycle = createLifecycle({
    node,
    inputs,
    clock,
    gracefulShutdownMs: config.bgp.gracefulShutdownMs,
    metrics,
    logger: log,
    onTransition: (state, previous, reason) => {
      events.emit('node.state', { state, previous, failStatic: failStatic.failStatic, ...(reason ? { reason } : {}) });
      if (!closed) void reconciler.request();
    },
  });
  const aggregator = createAggregator({
    node,
    store,
    logger: base,
    clock,
    leaseTtlS: config.etcd.leaseTtlS,
    onLeadership: (l) => metrics.aggregatorLeader.set(l ? 1 : 0),
    onDecisionsWritten: (n) => metrics.decisionsWrittenTotal.inc(n),
    onRejectedRecord: (family, err) => rejected.report(family, err),
  });
  const checker = createHealthChecker({
    logger: base.child({ component: 'health' }),
    clock,
    maxConcurrentProbes: config.health.maxConcurrentProbes,
    ...(deps.probe ? { probe: deps.probe } : {}),
    ...(config.health.sourceAddress ? { sourceAddress: config.health.sourceAddress } : {}),
    ...(deps.healthCa ? { ca: deps.healthCa } : {}),
    // Once per probe: a shared check (its own address) feeds every member that has it from one probe.
    onProbe: (r) => metrics.probesTotal.inc({ result: r.ok ? 'ok' : 'fail' }),
    onObservation(o) {
      events.emit('member.health', {
        member: o.key,
        observed: o.status,
        changed: o.changed,
        ok: o.result.ok,
        latencyMs: Math.round(o.result.latencyMs * 10) / 10,
        ...(o.result.reason ? { reason: o.result.reason } : {}),
      });
      if (!o.changed) return;
      metrics.setMemberObserved(o.key, o.status);
      aggregator.observe(node, o.key, o.status);
      reports.health();
      reports.status(); // its probeFailures
    },
  });
  const reconciler = createReconciler({
    inputs: () => ({
      fleet: inputs.fleet,
      revision: inputs.revision,
      decided: inputs.decided,
      ramps: pendingRamps.merged(inputs.ramps),
      history: inputs.history,
      routeMode: lifecycle.routeMode(),
      announceNew: !shuttingDown,
    }),
    dataPlane,
    speaker,
    routeContext: {
      nextHop4: config.node.address,
      ...(config.node.address6 ? { nextHop6: config.node.address6 } : {}),
      communities: config.bgp.communities,
    },
    events,
    metrics,
    logger: base,
    clock,
    verifyIntervalMs: config.dataplane.verifyIntervalS * 1000,
    onDataPlaneApply: (ok) => bfd.setDataPlaneHealthy(ok),
    onDrainAnnounced: () => lifecycle.drainAnnounced(),
    onDrainPassBegan: () => lifecycle.drainPassBegan(),
    onServedChange: (s) => {
      if (s.applied && lifecycle.markReady()) {
        log.info({ event: 'nodeReady', revision: s.appliedRevision, vips: s.tables.length });
      }
      reports.status();
    },
  });
  const bgp = createBgpSessions({
    speaker,
    config: config.bgp,
    clock,
    metrics,
    events,
    logger: log,
    onChange: () => reports.status(),
  });
  const bfd = createBfdController({
    config: config.bfd,
    bfdd: deps.bfdd ?? createVtyshBfdd(config.bfd.vtyDir),
    clock,
    metrics,
    events,
    logger: base,
    onChange: () => reports.status(),
  });
  const bfdStates = () => (config.bfd.enabled ? { bfd: bfd.states() } : {});
  const host = deps.host ?? systemHost();
  const reloader = createReloader({
    config,
    bgp,
    bfd,
    metrics,
    events,
    logger: log,
    setLogLevel: (level) => {
      deps.logger.level = level;
    },
    preflight: (next) => preflightProblems(next, host),
    tlsFiles: tlsFileDigests,
    health: checker,
    // From shutdown() on (the RFC 8326 drain, the withdraw, closing): the drain keeps the config it started with,
    // and the parts a reload changes are going or gone. (The CLI also ignores SIGHUP from SIGTERM on.)
    exiting: () => shuttingDown || closed || lifecycle.state === 'stopping' || lifecycle.state === 'stopped',
  });
  const statusRecord = (): AgentStatusReport => {
    const s = reconciler.served;
    const r = rejected.summary;
    return {
      tables: Object.fromEntries(s.checksums),
      announced: s.announcedVips,
      bgp: bgp.states(),
      failStatic: failStatic.failStatic,
      desiredRevision: s.appliedRevision,
      at: new Date(clock.now()).toISOString(),
      ...bfdStates(),
      ...probeFailuresReport(checker.failures()),
      ...(r ? { rejectedRecords: r } : {}),
    };
  };
  const reports = createReports({ clock, logger: log, observed: () => checker.observed(), status: statusRecord });
  const rejected = createRejectedRecords({ clock, logger: log, events, metrics, onChange: () => reports.status() });
  const servedFrom = (fleet: NonNullable<typeof inputs.fleet>): void => {
    checker.setTargets(healthTargets(fleet));
    const checked = checkedMembers(fleet);
    metrics.forgetMembersObserved(new Set(checked));
    aggregator.setMembers(checked);
    aggregator.setFleet(fleet);
  };
  const keeper = createLastStateKeeper({
    file: deps.lastState,
    inputs,
    clock,
    metrics,
    logger: log,
    maxAgeS: config.state.maxAgeS,
    // Starting without all four inputs: the file fills those etcd did not deliver (it may have been lost part-way).
    mayRestore: () => lifecycle.state === 'starting' && !inputs.complete,
    onRestored: () => {
      if (inputs.fleet) servedFrom(inputs.fleet);
      lifecycle.maybeReady();
    },
  });
  const failStatic = createFailStatic({
    store,
    clock,
    probeTimeoutMs: etcdProbeTimeoutMs(config.etcd.dialTimeoutMs, config.etcd.endpoints.length),
    metrics,
    logger: log,
    revision: () => inputs.revision,
    onFailStatic: (fs, why) => {
      const state = lifecycle.state;
      events.emit('node.state', { state, previous: state, failStatic: fs, reason: why });
      reports.status();
    },
    onUnreachable: (why) => {
      if (lifecycle.state === 'starting' && !inputs.complete) void keeper.restore(why);
    },
    onAnswered: () => keeper.etcdAnswered(),
    onRejectedRecord: (err) => rejected.report('election', err),
  });
  /** An input etcd delivered: the node becomes ready, or serves it. */
  const served = (): void => {
    keeper.etcdInputArrived();
    if (lifecycle.state === 'starting') lifecycle.maybeReady();
    else void reconciler.request();
  };
  const decidedFallback = createDecidedFallback(deps.lastState, log);
  const connection = createEtcdConnection({
    store,
    node: { name: node, address: config.node.address, ...(deps.version ? { version: deps.version } : {}) },
    leaseTtlS: config.etcd.leaseTtlS,
    clock,
    logger: log,
    failStatic,
    reports,
    rejected,
    decidedFallback,
    onDesired: (d) => {
      pendingRamps.fleetChanged(inputs.fleet, d.fleet);
      inputs.setDesired(d);
      log.info({ event: 'desiredState', revision: d.revision, vips: d.fleet.vips.length, pools: d.fleet.pools.length });
      servedFrom(d.fleet);
      served();
    },
    onDecided: (d) => {
      pendingRamps.decided(d.ramps);
      inputs.setDecided(d.decided, d.ramps);
      recordDecided(metrics, d.decided, d.ramps);
      aggregator.setDecided(d.decided, d.ramps);
      served();
    },
    onHistory: (h) => {
      inputs.setHistory(h.history);
      aggregator.setHistory(h.history);
      served();
    },
    onHistoryRejected: () => aggregator.historyRejected(),
    onNodes: (views) => {
      aggregator.setLiveNodes(new Set(views.filter((v) => v.record !== undefined).map((v) => v.name)));
      const flag = views.find((v) => v.name === node)?.drained ?? false;
      if (inputs.setNodes(flag)) log.info({ event: flag ? 'drainRequested' : 'undrainRequested', by: 'operator' });
      keeper.etcdInputArrived();
      lifecycle.followDrainWish();
    },
    onStateRejected: (err) => {
      // The desired state's own metric and event stay (dashboards and `l4fleet events` use them).
      metrics.stateRejectedTotal.inc();
      log.error({ event: 'stateRejected', err: err.message, keptRevision: inputs.revision });
      events.emit('state.rejected', { error: err.message, code: err.code });
      if (isRejectedRecord(err)) rejected.report('desired', err);
      else rejected.note('desired', err);
      // A running node keeps serving its last good state; one that restarts into a refused state serves its file,
      // or it would stay `starting` (never ready, no routes) until the desired state is repaired.
      if (lifecycle.state === 'starting' && !inputs.fleet) void keeper.restore(`stateRejected: ${err.code}`);
    },
    servingStateFile: () => inputs.source === 'lastState',
    onNameTaken: (err) => deps.onNameTaken?.(err),
  });

  /** Registers, starts the watches, the NATS health subscription and the aggregator; retries until closed. */
  const connectEtcd = async (): Promise<void> => {
    await decidedFallback.load(); // before the decided watch: its first read may need the file's decisions
    await connection.connect();
    if (closed || connection.nameTaken) return; // not this node's: no aggregator, no peer health
    if (deps.nats) {
      followPeerHealth(deps.nats, {
        prefix: natsPrefix,
        fleet: config.fleet,
        node,
        onObservation: (n, member, status) => aggregator.observe(n, member, status),
      });
    }
    aggregator.start();
    if (!keeper.enabled) failStatic.startProbing();
  };

  return {
    async start() {
      log.info({ event: 'agentStarting', fleet: config.fleet, driver: config.dataplane.driver });
      // Accepted agent.yaml fields that do nothing (config/dataplane.ts): said once, at the start.
      for (const warning of config.dataplane.warnings ?? []) log.warn({ event: 'configWarning', warning });
      bgp.start();
      bfd.start();
      if (!keeper.enabled) {
        await connectEtcd();
        return;
      }
      // With a state file, probe etcd at once: unreachable while starting means serve the file (fail-static).
      failStatic.startProbing(0);
      const connected = connectEtcd().catch((err: unknown) => {
        log.error({ event: 'etcdConnectFailed', err: (err as Error).message });
      });
      await Promise.race([connected, keeper.restored]);
    },
    whenReady: (timeoutMs) => lifecycle.whenReady(timeoutMs),
    async drain() {
      lifecycle.setLocalDrain(true);
      await reconciler.request();
    },
    async undrain() {
      lifecycle.setLocalDrain(false);
      await reconciler.request();
    },
    async shutdown() {
      shuttingDown = true;
      await shutdownSequence({
        lifecycle,
        reconciler,
        reloader,
        clock,
        logger: log,
        forwardAfterWithdrawMs: config.drain.forwardAfterWithdrawMs,
        close: () => this.close(),
      });
    },
    async close() {
      if (closed) return;
      closed = true;
      lifecycle.close();
      reports.close();
      failStatic.close();
      keeper.close();
      bgp.close();
      bfd.close();
      checker.close();
      reconciler.close();
      pendingRamps.close();
      await aggregator.close();
      await connection.close();
      lifecycle.stopped();
      log.info({ event: 'agentStopped' });
    },
    reconcile: () => reconciler.request(),
    // Refused once the agent is exiting (the reloader's `exiting`), checked as the reload starts and before it applies.
    reload: (load) => reloader.reload(load),
    status() {
      const s = reconciler.served;
      const r = rejected.summary;
      return {
        node,
        state: lifecycle.state,
        failStatic: failStatic.failStatic,
        etcdConnected: failStatic.etcdOk,
        ready: lifecycle.ready,
        aggregator: aggregator.isLeader,
        desiredRevision: s.appliedRevision,
        tables: Object.fromEntries(s.checksums),
        announced: s.announcedVips,
        routes: [...s.routes.keys()].sort(),
        decided: Object.fromEntries(inputs.decided),
        observed: Object.fromEntries(checker.observed()),
        bgp: bgp.states(),
        ...bfdStates(),
        inputSource: inputs.source,
        ...(r ? { rejectedRecords: r } : {}),
        ...(s.refused ? { dataPlaneRefused: s.refused } : {}),
      };
    },
    metrics,
    events,
  };
}
