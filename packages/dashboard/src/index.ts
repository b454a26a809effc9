export { type ActionResult, type Actions, createActions, type MemberAction } from './actions.js';
export {
  ASSET_PATHS,
  type Asset,
  assetsBuild,
  BUILD_META,
  loadAssets,
  loadPageAssets,
  type PageAssets,
  withBuild,
} from './assets.js';
export { createWriteGuard, MIN_TOKEN_LENGTH, type WriteGuard } from './auth.js';
export { type Dashboard, type DashboardOptions, NATS_RETRY_MS, startDashboard } from './dashboard.js';
export { DashboardError, type DashboardErrorCode, HTTP_STATUS } from './errors.js';
export {
  checkEtcd,
  ETCD_CHECK_INTERVAL_MS,
  ETCD_CHECK_TIMEOUT_MS,
  ETCD_REACHABLE,
  type EtcdCheck,
  type EtcdCheckOptions,
  type EtcdReachability,
} from './etcd-check.js';
export {
  buildFleetView,
  type FleetInputs,
  type FleetView,
  type MemberRow,
  type NodeRow,
  type PoolRow,
  type ShareRow,
  type VipRow,
} from './fleet-view.js';
export { type LabFlows, labFlowsSubject, MAX_LAB_FLOWS_BYTES, parseLabFlows } from './lab-flows.js';
export {
  type LiveFleet,
  type LiveFleetOptions,
  REBUILD_DELAY_MS,
  WATCH_OPEN_TIMEOUT_MS,
  WATCH_RETRY_MS,
  watchFleet,
} from './live-fleet.js';
export { MAX_NODES_NAMED, type MemberHealth, type MemberHealthRow } from './member-health.js';
export {
  BACKEND_PACKETS,
  createMetricsRecorder,
  DROPS,
  type FetchText,
  FLOW_ENTRIES,
  HISTORY_POINTS,
  httpFetchText,
  MAX_METRICS_BYTES,
  type MetricsColumn,
  type MetricsHistory,
  type MetricsRecorder,
  SCRAPE_INTERVAL_MS,
  SCRAPE_TIMEOUT_MS,
  type Series,
  VIP_PACKETS,
} from './metrics-history.js';
export { DEFAULT_LISTEN, type ListenAddress, parseListen, parseMetricsTargets } from './options.js';
export { firstValue, parsePrometheusText, type Sample, sumBy } from './prom-text.js';
export { serveViews } from './served-view.js';
export { createSseHub, SSE_HEARTBEAT_MS, SSE_MAX_BUFFERED_BYTES, type SseHub, sseRecord } from './sse.js';
export {
  createTimeline,
  isUnchangedProbe,
  MAX_AGENT_EVENT_CHARS,
  parseAgentEvent,
  TIMELINE_CAPACITY,
  TIMELINE_PROBE_CAPACITY,
  type Timeline,
  type TimelineEntry,
} from './timeline.js';
