export {
  appliedByText,
  DOCUMENT_SCHEMA,
  decodeDocument,
  decodePointer,
  encodeDocument,
  MAX_APPLIED_BY_CHARS,
  type Pointer,
} from './codec.js';
export {
  DEFAULT_CALL_TIMEOUT_MS,
  DEFAULT_DIAL_TIMEOUT_MS,
  ENDPOINT_KEEPALIVE_TIME_MS,
  ENDPOINT_KEEPALIVE_TIMEOUT_MS,
  type EtcdStoreOptions,
} from './connection.js';
export { EMPTY_FLEET } from './desired.js';
export { type DesiredChange, type DesiredChanges, desiredChanges } from './desired-changes.js';
export { MAX_DESIRED_HISTORY } from './desired-history.js';
export { ENDPOINT_PROBE_MAX_MS, ENDPOINT_PROBE_MIN_MS } from './endpoint-health.js';
export { ETCD_ENDPOINT_FORM, type EtcdEndpointProblem, etcdEndpointProblems } from './endpoint-url.js';
export { StoreError, type StoreErrorCode, type StoreErrorReason, toStoreError } from './errors.js';
export { EtcdFleetStore } from './etcd-store.js';
export { fittedHistoryValue } from './history.js';
export { decodePoolHistory, encodePoolHistory, MAX_TABLES_PER_HISTORY } from './history-record.js';
export {
  AGGREGATOR_ELECTION,
  CHUNK_BYTES,
  DEFAULT_PREFIX,
  GZIP_THRESHOLD_BYTES,
  INLINE_MAX_BYTES,
  keys,
  LAYOUT_VERSION,
  layoutNamespace,
  NODE_NAME,
} from './layout.js';
export { longestRenewalGapMs } from './lease-keeper.js';
export {
  MAX_DOCUMENT_BYTES,
  MAX_DOCUMENT_CHUNKS,
  MAX_DOCUMENT_JSON_BYTES,
  MAX_KEYS_PER_FAMILY,
  MAX_MEMBERS_PER_RECORD,
  MAX_PEERS_PER_STATUS,
  MAX_POINTER_BYTES,
  MAX_PROBE_FAILURES_PER_STATUS,
  MAX_RECORD_BYTES,
  MAX_TEXT_CHARS,
  MAX_VIPS_PER_STATUS,
} from './limits.js';
export { MemoryFleetStore } from './memory-store.js';
export { isNameTaken } from './node-claim.js';
export {
  editFleet,
  editPoolMembers,
  editVip,
  type FleetEdit,
  MAX_POOL_EDIT_ATTEMPTS,
  type MembersEdit,
  type PoolEditOptions,
  type PoolEditPreview,
  type PoolEditUnchanged,
  type PoolEditWritten,
  type VipEdit,
} from './pool-edit.js';
export { decodeMemberRamp } from './record-check.js';
export { DEFAULT_LEASE_TTL_S } from './registration.js';
export type {
  ApplyOptions,
  ApplyResult,
  BfdSessionState,
  CampaignOptions,
  DecidedState,
  DecidedWriteOptions,
  DesiredHistory,
  DesiredRevision,
  DesiredState,
  FleetStore,
  HealthReport,
  Leadership,
  NodeInfo,
  NodeLease,
  NodeRecord,
  NodeRegistration,
  NodeRegistrationOptions,
  NodeStatusReport,
  NodeView,
  ProbeFailureReport,
  TableHistoryState,
  Watch,
  WatchListener,
} from './types.js';
export { BFD_SESSION_STATES } from './types.js';
