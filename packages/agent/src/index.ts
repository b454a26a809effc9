export { type Agent, type AgentDeps, type AgentStatus, type AgentStatusReport, createAgent } from './agent.js';
export { type Aggregator, type AggregatorOptions, createAggregator } from './aggregate/aggregator.js';
export { decideAll, decideMember, decisionDelta, type HealthReports } from './aggregate/decide.js';
export { type Bfdd, createVtyshBfdd } from './bfd/bfdd.js';
export { type BfdController, type BfdControllerOptions, createBfdController } from './bfd/controller.js';
export { type Clock, createManualClock, type ManualClock, systemClock, withTimeout } from './clock.js';
export { ipv4In6Problem } from './config/bfd.js';
export * as agentConfigDefaults from './config/defaults.js';
export { type HostFacts, systemHost } from './config/host.js';
export { loadAgentConfig, parseAgentConfigText } from './config/load.js';
export { applyOverrides, type ConfigOverrides } from './config/overrides.js';
export { parseAgentConfig } from './config/parse.js';
export { preflightProblems, preflightWarnings } from './config/preflight.js';
export {
  BFD_TIMER_FIELDS,
  changedFields,
  LIVE_RELOAD_FIELDS,
  planReload,
  type ReloadPlan,
} from './config/reload.js';
export {
  checkTlsContent,
  MAX_HEALTH_CA_FILE_BYTES,
  MAX_TLS_FILE_BYTES,
  readHealthCa,
  readTlsFile,
  type TlsFileKind,
} from './config/tls-files.js';
export {
  type AgentConfig,
  type BfdPeerSection,
  type BfdSection,
  type BgpSection,
  DATA_PLANE_DRIVERS,
  type DataPlaneDriver,
  type DataPlaneSection,
  type DrainSection,
  type EtcdSection,
  type HealthSection,
  type LogLevel,
  type MetricsSection,
  type NatsSection,
  type NodeSection,
  type PeerSection,
  type StateSection,
  type TlsFiles,
} from './config/types.js';
export { type AgentConfigProblem, AgentError, type AgentErrorCode } from './errors.js';
export { ETCD_PROBE_INTERVAL_MS } from './etcd/fail-static.js';
export { INVALID_RECORD, type RecordFamily, type RejectedRecords } from './etcd/rejected-records.js';
export { type FollowEventsOptions, followEvents } from './events/follow.js';
export { createNatsLink, type NatsLink, type NatsLinkOptions } from './events/nats-link.js';
export { createEventPublisher, type EventPublisher, type EventTransport } from './events/publisher.js';
export {
  type AgentEvent,
  type AgentEventData,
  EVENT_KINDS,
  type EventKind,
  eventFilter,
  eventSubject,
} from './events/subjects.js';
export {
  createHealthChecker,
  type HealthChecker,
  type HealthObservation,
  type HealthTarget,
} from './health/checker.js';
export { Hysteresis, type ObservedStatus } from './health/hysteresis.js';
export { type Probe, type ProbeOptions, type ProbeResult, type ProbeTarget, probeMember } from './health/probe.js';
export { AGENT_DOWN_WORDS, AGENT_UP_WORDS, agentReplyState, MAX_AGENT_REPLY_BYTES } from './health/probe-agent.js';
export { mayAnnounce, type NodeEvent, type NodeState, nextNodeState } from './lifecycle/node-state.js';
export { type ObservabilityServer, startObservabilityServer } from './observe/http.js';
export { type AgentMetrics, createAgentMetrics } from './observe/metrics.js';
export { STATE_REFRESH_MS, STATE_SAVE_DELAY_MS } from './persist/keeper.js';
export {
  createLastStateFile,
  decodeLastState,
  encodeLastState,
  type LastState,
  type LastStateFileOptions,
  type LastStateStore,
  STATE_FILE_KIND,
  STATE_FILE_SCHEMA,
  type StateIdentity,
  stateFileName,
} from './persist/last-state.js';
export { type RunAgentOptions, type RunningAgent, runAgent } from './runtime.js';
export {
  createConfiguredDataPlane,
  DATA_PLANE_DRIVER_SPECS,
  type DataPlaneDriverSpec,
} from './serve/drivers.js';
export { createDryRunDataPlane, type DryRunDataPlane } from './serve/dry-run.js';
export {
  checkedMembers,
  healthTargets,
  hostPrefix,
  type PlannedTable,
  plannedRoutes,
  planTables,
  toDataPlaneTable,
} from './serve/plan.js';
export { createReconciler, GRACEFUL_SHUTDOWN, type Reconciler, type ServedState } from './serve/reconciler.js';
