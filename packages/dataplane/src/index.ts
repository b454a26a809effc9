export { DEFAULT_BACKEND_OBJECT } from './backend/bpf.js';
export {
  type BackendCounters,
  type FamilyPair,
  formatCounters,
  type PacketCount,
  totalDecapsulated,
} from './backend/counters.js';
export {
  type BackendSetupInput,
  type BackendSetupOptions,
  DEFAULT_BPFFS_DIR,
  DEFAULT_GUE_PORT,
  DEFAULT_STATE_DIR,
  FORWARDING_MODES,
  type ForwardingMode,
  parseBackendSetupOptions,
} from './backend/options.js';
export type { BackendRecord, SysctlChange } from './backend/record.js';
export { type BackendChange, type BackendHostDeps, type BackendSetupReport, setupBackend } from './backend/setup.js';
export {
  type BackendStatus,
  type BackendTeardownReport,
  backendStatus,
  teardownBackend,
} from './backend/teardown.js';
export { bpffsPathProblem } from './bpf/bpffs.js';
export { type BpfDataPlane, createBpfDataPlane, type ProgramRun, type ProgramStats } from './bpf/driver.js';
export { BPF_LOADER_PATH, BPF_NODE_OBJECT_PATH, bpfAvailable, type XdpMode } from './bpf/loader.js';
export {
  type BpfDataPlaneOptions,
  DEFAULT_BPF_FLOW_TABLE_SIZE,
  DEFAULT_BPFFS_PATH,
  DEFAULT_PIN_NAME,
} from './bpf/options.js';
export { DataPlaneError, type DataPlaneErrorCode } from './errors.js';
export { createExec, type Exec, type ExecResult } from './exec.js';
export {
  createNftablesDataPlane,
  DEFAULT_FLOW_TABLE_SIZE,
  DEFAULT_FLOW_TIMEOUT_TCP_S,
  DEFAULT_FLOW_TIMEOUT_UDP_S,
  DEFAULT_FOLD_DELAY_MS,
  DEFAULT_TABLE_NAME,
  type NftablesDataPlaneOptions,
} from './nft/driver.js';
export {
  createProxyDataPlane,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_PROXY_FLOW_TABLE_SIZE,
  DEFAULT_PROXY_FLOW_TIMEOUT_UDP_S,
  type ProxyDataPlaneOptions,
} from './proxy/driver.js';
export type { ProxySelection } from './proxy/select.js';
export { nodeSockets, type ProxySockets } from './proxy/sockets.js';
export { createRecordingDataPlane, type RecordingDataPlane } from './recording.js';
export { changedSlotIndices, changedSlots } from './slots.js';
export type {
  ApplyResult,
  BpfDropReason,
  DataPlane,
  DataPlaneCounters,
  DropReason,
  Forwarding,
  OnMemberDown,
  TrafficCounter,
  VipAction,
  VipApplyReport,
  VipBackend,
  VipTable,
} from './types.js';
export { keepsFlows, nothingVerified } from './types.js';
