export { DNSMASQ_BIN, type DnsmasqHandle, type DnsmasqOptions, dnsmasqArgv, startDnsmasq } from './dnsmasq.js';
export { DaemonError, type DaemonErrorCode } from './errors.js';
export { type EtcdHandle, type EtcdOptions, etcdctl, startEtcd } from './etcd.js';
export { type EtcdTls, makeCerts } from './etcd-certs.js';
export {
  type EtcdClusterHandle,
  type EtcdClusterOptions,
  type EtcdMemberHandle,
  startEtcdCluster,
} from './etcd-cluster.js';
export {
  ETCD_BIN,
  type EtcdMemberOptions,
  etcdEnv,
  etcdMemberArgv,
  etcdMemberFlags,
  singleMemberFlags,
} from './etcd-flags.js';
export {
  type BfddOptions,
  type BfdPeer,
  type BfdPeerState,
  type BfdTimers,
  bfdPeerCommands,
  bfdPeerRemoveCommands,
  bfdTimers,
  DEFAULT_BFD_DETECT_MULTIPLIER,
  DEFAULT_BFD_INTERVAL_MS,
  frrBfddConfig,
  parseBfdPeers,
} from './frr-bfd.js';
export {
  DEFAULT_MAXIMUM_PATHS,
  FRR_DAEMON_DIR,
  type FrrDaemon,
  type FrrNeighbor,
  type FrrOptions,
  type FrrPaths,
  type FrrPeerGroup,
  type FrrPeerSettings,
  frrBgpdConfig,
  frrDaemonArgv,
  frrPaths,
  prepareBfddDir,
  prepareFrrDir,
} from './frr-config.js';
export {
  addFrrNeighbor,
  type BgpNeighborState,
  type KernelRoute,
  kernelRoute,
  parseBgpSummary,
  vtysh,
} from './frr-query.js';
export {
  type FrrRouter,
  type FrrRouterOptions,
  type HostLink,
  ROUTER_SYSCTLS,
  startFrr,
} from './frr-router.js';
export {
  GOBGP_CLI_BIN,
  GOBGPD_BIN,
  type GobgpApi,
  type GobgpdArgvOptions,
  type GobgpdConfig,
  type GobgpdNeighborConfig,
  type GobgpNeighbor,
  gobgpAnnounce,
  gobgpCli,
  gobgpdArgv,
  gobgpdConfigToml,
  gobgpNeighbors,
  gobgpRibPrefixes,
  gobgpWithdraw,
} from './gobgpd.js';
export { type GobgpdHandle, type GobgpdOptions, startGobgpd } from './gobgpd-child.js';
export { NATS_SERVER_BIN, type NatsArgvOptions, type NatsHandle, natsArgv, startNats } from './nats.js';
export {
  PROMETHEUS_BIN,
  type PrometheusAlert,
  type PrometheusHandle,
  type PrometheusOptions,
  type PrometheusSample,
  startPrometheus,
} from './prometheus.js';
