/**
 * The agent with its real adapters: etcd (EtcdFleetStore), gobgpd (createGobgpSpeaker), the configured data
 * plane, NATS, and the /metrics server. `l4fleet agent` calls runAgent(); tests can too.
 */
import { createGobgpSpeaker, type Speaker } from '@l4fleet/bgp';
import type { DataPlane } from '@l4fleet/dataplane';
import { EtcdFleetStore, type FleetStore, type StoreError } from '@l4fleet/store';
import type { Logger } from 'pino';
import { type Agent, createAgent } from './agent.js';
import { type Clock, systemClock } from './clock.js';
import { readHealthCa, readTlsFiles, type TlsContent } from './config/tls-files.js';
import type { AgentConfig } from './config/types.js';
import { createNatsLink, type NatsLink } from './events/nats-link.js';
import { type ObservabilityServer, startObservabilityServer } from './observe/http.js';
import { createAgentMetrics } from './observe/metrics.js';
import { createLastStateFile } from './persist/last-state.js';
import { createConfiguredDataPlane } from './serve/drivers.js';

export interface RunningAgent {
  readonly agent: Agent;
  /** Where /metrics, /healthz and /readyz answer. */
  readonly metricsAddress: string;
  /** SIGTERM path: drain, keep forwarding a while, then stop everything. */
  shutdown(): Promise<void>;
  /** Stops without draining (routes and forwarding stay: a restart reconciles without a flap). */
  close(): Promise<void>;
}

export interface RunAgentOptions {
  readonly logger: Logger;
  readonly version?: string;
  /** Replace an adapter (tests, bench): anything not given is built from the config. */
  readonly store?: FleetStore;
  readonly speaker?: Speaker;
  readonly dataPlane?: DataPlane;
  /** Time for the agent and this runtime; default the system clock. */
  readonly clock?: Clock;
  /**
   * Aborted (SIGTERM) while the agent starts: its shutdown begins at once, not once the start is done. From
   * `starting` the lifecycle goes straight to drained, so nothing is announced; the start then settles (close() ends
   * its wait for etcd) and runAgent resolves with the agent stopped, its shutdown() finishing the rest. Aborted after
   * the start, it does nothing: the caller calls shutdown().
   */
  readonly signal?: AbortSignal;
  /**
   * The node's node.name turned out held by another address while it served (AgentDeps.onNameTaken): runAgent has
   * begun the agent's shutdown (drain: withdraw routes, stop) and calls this so the caller ends the process with a
   * failure (`l4fleet agent` exits 1; systemd's Restart=on-failure starts it again, refused until the name is free).
   * The caller's shutdown() waits for that drain and closes the rest.
   */
  readonly onNameTaken?: (err: StoreError) => void;
}

/** How often the event counters are copied into their gauges, ms. */
const EVENT_METRICS_REFRESH_MS = 1_000;

function createStore(config: AgentConfig, logger: Logger, tls: TlsContent | undefined): FleetStore {
  return new EtcdFleetStore({
    endpoints: config.etcd.endpoints,
    prefix: config.etcd.prefix,
    dialTimeoutMs: config.etcd.dialTimeoutMs,
    // The store binds its own `component: 'store'` (pino would write a key bound twice twice).
    logger,
    ...(tls ? { tls } : {}),
    ...(config.etcd.user !== undefined && config.etcd.password !== undefined
      ? { auth: { username: config.etcd.user, password: config.etcd.password } }
      : {}),
  });
}

export async function runAgent(config: AgentConfig, opts: RunAgentOptions): Promise<RunningAgent> {
  const logger = opts.logger;
  const clock = opts.clock ?? systemClock;
  // Read before anything starts (nothing to close yet): a bad file refuses the start instead of failing every probe.
  const healthCa = config.health.caFile === undefined ? undefined : readHealthCa(config.health.caFile);
  // The etcd client and the NATS link get the content, read once here (a regular file only, never blocking): a file
  // deleted or renewed later changes nothing until a restart, as a reload says.
  const etcdTls = opts.store ? undefined : readTlsFiles('etcd', config.etcd.tls);
  const natsTls = config.nats.servers.length > 0 ? readTlsFiles('nats', config.nats.tls) : undefined;
  const metrics = createAgentMetrics({ node: config.node.name, fleet: config.fleet });
  const store = opts.store ?? createStore(config, logger, etcdTls);
  const speaker = opts.speaker ?? createGobgpSpeaker({ address: config.bgp.gobgpdAddress, logger });
  const dataPlane = opts.dataPlane ?? createConfiguredDataPlane(config, logger);
  let nats: NatsLink | undefined;
  let agent: Agent | undefined;
  if (config.nats.servers.length > 0) {
    nats = createNatsLink({
      config: config.nats,
      ...(natsTls ? { tls: natsTls } : {}),
      name: `l4fleet-agent-${config.node.name}`,
      logger,
      clock,
      onConnectionChange: (c) => {
        metrics.natsConnected.set(c ? 1 : 0);
        if (c) agent?.events.flush();
      },
    });
  }
  agent = createAgent({
    config,
    onNameTaken: (err) => {
      logger.info({ event: 'shutdownNameTaken', action: 'drain; the caller exits with a failure' });
      shutdownAgent().catch((e: unknown) => logger.error({ event: 'shutdownFailed', err: e }));
      opts.onNameTaken?.(err);
    },
    clock,
    ...(healthCa ? { healthCa } : {}),
    store,
    speaker,
    dataPlane,
    logger,
    metrics,
    ...(nats ? { nats } : {}),
    ...(opts.version ? { version: opts.version } : {}),
    ...(config.state.enabled
      ? {
          lastState: createLastStateFile({
            dir: config.state.dir,
            identity: { node: config.node.name, fleet: config.fleet, etcdPrefix: config.etcd.prefix },
            maxBytes: config.state.maxBytes,
            maxAgeS: config.state.maxAgeS,
          }),
        }
      : {}),
  });
  const a = agent;
  // One shutdown of the agent, begun by the signal while starting or by shutdown(), whichever comes first.
  let shuttingDown: Promise<void> | undefined;
  const shutdownAgent = (): Promise<void> => {
    shuttingDown ??= a.shutdown();
    return shuttingDown;
  };
  const onAbort = (): void => {
    logger.info({ event: 'shutdownWhileStarting' });
    shutdownAgent().catch((err: unknown) => logger.error({ event: 'shutdownFailed', err }));
  };
  let server: ObservabilityServer | undefined;
  try {
    server = await startObservabilityServer({
      listen: config.metrics.listen,
      registry: metrics.registry,
      logger,
      // Ready stays once reached (a start gate): a data plane refusing a later revision serves the tables it holds,
      // and the body says so (0006: /readyz).
      readiness: () => {
        const s = a.status();
        if (s.state === 'stopping' || s.state === 'stopped') return { ready: false, reason: s.state };
        if (!s.ready) return { ready: false, reason: 'waiting for the desired state' };
        const base = !s.failStatic
          ? 'ready'
          : s.inputSource === 'lastState'
            ? `ready (fail-static: etcd unreachable; serving the state file, revision ${s.desiredRevision})`
            : 'ready (fail-static: etcd unreachable)';
        const r = s.dataPlaneRefused;
        if (!r) return { ready: true, reason: base };
        return {
          ready: true,
          reason: `${base}; data plane refused revision ${r.revision} (serving ${s.desiredRevision}): ${r.reason}`,
        };
      },
    });
    // start() first, then the signal: a shutdown begun before start() would have its close() undone by the start
    // (the BGP and BFD loops started after they were closed). Begun while start() is pending it is clean.
    const started = a.start();
    if (opts.signal?.aborted) onAbort();
    else opts.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await started;
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
    }
  } catch (err) {
    // Everything built here is closed (a metrics port in use left the speaker, data plane and store open).
    await a.close().catch(() => undefined);
    await server?.close().catch(() => undefined);
    await nats?.close().catch(() => undefined);
    await speaker.close().catch(() => undefined);
    await dataPlane.close().catch(() => undefined);
    if (!opts.store) await store.close().catch(() => undefined);
    throw err;
  }
  const srv = server;
  let stopped = false;
  const finish = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    metrics.eventsPublishedTotal.set(a.events.published);
    await nats?.close();
    await speaker.close().catch(() => undefined);
    await dataPlane.close().catch(() => undefined);
    if (!opts.store) await store.close().catch(() => undefined);
    await srv.close();
  };
  let refresh: unknown;
  const refreshEventMetrics = (): void => {
    metrics.eventsPublishedTotal.set(a.events.published);
    metrics.eventsDroppedTotal.set(a.events.dropped);
    refresh = clock.setTimeout(refreshEventMetrics, EVENT_METRICS_REFRESH_MS);
  };
  refresh = clock.setTimeout(refreshEventMetrics, EVENT_METRICS_REFRESH_MS);
  return {
    agent: a,
    metricsAddress: srv.address,
    async shutdown() {
      clock.clearTimeout(refresh);
      await shutdownAgent();
      await finish();
    },
    async close() {
      clock.clearTimeout(refresh);
      await a.close();
      await finish();
    },
  };
}
