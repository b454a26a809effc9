// The runner the lab uses, for the lab's tests and scripts (one implementation: @l4fleet/process).
export { namespacePids, type RunOptions, type RunResult, run, waitFor } from '@l4fleet/process';
export { createLabProgram, type LabIo, runLabCli } from './cli.js';
export { LabError, type LabErrorCode } from './errors.js';
export { type FlowsPublisher, LAB_FLOWS_SUBJECT, labFlowsOf, publishLabFlows } from './flows/publish.js';
export { FlowRun, type FlowRunOptions } from './flows/run.js';
export { disruptionTable, type FlowSummary, flowKey, summarize } from './flows/summary.js';
export type { FlowSample, FlowState, FlowTarget, WorkerCommand, WorkerReport } from './flows/types.js';
export { render, type WatchOptions, type WatchResult, type WatchTick, watch } from './flows/watch.js';
export {
  DEFAULT_BROKEN_AFTER_MS,
  DEFAULT_FLOW_INTERVAL_MS,
  FlowWorker,
  type FlowWorkerOptions,
} from './flows/worker.js';
export {
  greeting,
  type IdentityServer,
  type IdentityServerOptions,
  type ListenSpec,
  parseListenSpec,
  startIdentityServer,
} from './identity/server.js';
export { agentArgv, agentAvailable, agentConfig, agentYaml, cliBin } from './runtime/agent.js';
export { backendSetupArgv, nodeAddresses } from './runtime/backend-setup.js';
export {
  DASHBOARD_READY_TIMEOUT_MS,
  DASHBOARD_TOKEN_BYTES,
  dashboardArgv,
  dashboardTokenFile,
  dashboardUrl,
  LAB_DASHBOARD_PORT,
  type LabDashboard,
  labDashboard,
  restartLabDashboard,
  startLabDashboard,
} from './runtime/dashboard.js';
export {
  daemonPid,
  type RestartAgentOptions,
  type RestartableLab,
  restartAgent,
  signalDaemon,
} from './runtime/faults.js';
export { type AppliedFleet, applyDefaultFleet } from './runtime/fleet-apply.js';
export { bgpdConfig } from './runtime/frr.js';
export { announce, announced, gobgpdStaticConfig, neighbors, withdraw } from './runtime/gobgp.js';
export {
  type AddBackendOptions,
  DEFAULT_READY_TIMEOUT_MS,
  Lab,
  type OpenOptions,
  topologyOf,
  type UpOptions,
} from './runtime/lab.js';
export type { LabContext, LabRuntime } from './runtime/lab-runtime.js';
export { hostScript, hubPortName, topologyScript } from './runtime/netns-plan.js';
export {
  OBSERVE_TABLE,
  observeRuleset,
  observeTableOf,
  parseObservedSet,
  STATIC_TABLE,
  staticForwarderRuleset,
} from './runtime/nft.js';
export { downLab, type LabResources, listLabIds, listLabResources } from './runtime/resources.js';
export {
  DEFAULT_STATE_ROOT,
  type LabEvent,
  type LabMode,
  type LabState,
  type Runtime,
  readEvents,
} from './runtime/state.js';
export { type EtcdMemberStatus, type LabStatus, type NodeStatus, routerNextHops } from './runtime/status.js';
export { BPF_BUILD_HINT, type UpDataPath, type UpDataPathContext, upDataPath } from './runtime/up-data-path.js';
export { containerlabYaml, IMAGES, toContainerlab } from './topology/containerlab.js';
export {
  BACKEND_NETWORKS,
  type BackendNetwork,
  type DataPathOptions,
  DEFAULT_DATA_PATH,
  dataPathOf,
  impliedDataPlane,
  LAB_DATA_PLANES,
  LAB_FORWARDINGS,
  type LabDataPath,
  type LabDataPlane,
  type LabForwarding,
  NFTABLES_DATA_PATH,
} from './topology/data-path.js';
export { labFleet, labFleetYaml } from './topology/fleet.js';
export {
  AGENT_METRICS_PORT,
  attachmentOf,
  BACKEND_SEGMENT,
  BGP_HOLD_TIME_S,
  BGP_KEEPALIVE_S,
  backendAttachment,
  buildTopology,
  DEFAULT_ETCD_MEMBERS,
  DEFAULT_LAB_ID,
  type EtcdMember,
  hostOf,
  hostsOfKind,
  LAB_PREFIX,
  type LabHost,
  type LabVip,
  namespaceOf,
  type Segment,
  type Topology,
  type TopologyOptions,
  VIP_TCP,
  VIP_TCP6,
  VIP_UDP,
} from './topology/model.js';
