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
export { createRecordingDataPlane, type RecordingDataPlane } from './recording.js';
export { changedSlots } from './slots.js';
export type {
  ApplyResult,
  DataPlane,
  DataPlaneCounters,
  DropReason,
  TrafficCounter,
  VipAction,
  VipApplyReport,
  VipBackend,
  VipTable,
} from './types.js';
export { vipLabel } from './validate.js';
