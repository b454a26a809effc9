export { DOCUMENT_SCHEMA, decodeDocument, decodePointer, encodeDocument, type Pointer } from './codec.js';
export { StoreError, type StoreErrorCode, toStoreError } from './errors.js';
export {
  DEFAULT_CALL_TIMEOUT_MS,
  DEFAULT_DIAL_TIMEOUT_MS,
  EMPTY_FLEET,
  EtcdFleetStore,
  type EtcdStoreOptions,
} from './etcd-store.js';
export {
  AGGREGATOR_ELECTION,
  CHUNK_BYTES,
  DEFAULT_PREFIX,
  GZIP_THRESHOLD_BYTES,
  keys,
  LAYOUT_VERSION,
  layoutNamespace,
  NODE_NAME,
} from './layout.js';
export { MemoryFleetStore } from './memory-store.js';
export { DEFAULT_LEASE_TTL_S } from './registration.js';
export type {
  ApplyOptions,
  ApplyResult,
  CampaignOptions,
  DecidedState,
  DesiredState,
  FleetStore,
  HealthReport,
  Leadership,
  NodeInfo,
  NodeRecord,
  NodeRegistration,
  NodeRegistrationOptions,
  NodeStatusReport,
  NodeView,
  Watch,
  WatchListener,
} from './types.js';
