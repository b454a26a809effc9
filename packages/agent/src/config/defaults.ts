/**
 * Defaults of agent.yaml, with units in the names. A default whose concept another package owns is that package's
 * constant, re-exported under the agent.yaml field's name.
 */
import { DEFAULT_BFD_DETECT_MULTIPLIER, DEFAULT_BFD_INTERVAL_MS } from '@l4fleet/daemons';
import { DEFAULT_BPFFS_PATH as DATAPLANE_BPFFS_PATH, DEFAULT_PIN_NAME as DATAPLANE_PIN_NAME } from '@l4fleet/dataplane';
import { DEFAULT_DIAL_TIMEOUT_MS, DEFAULT_LEASE_TTL_S as STORE_LEASE_TTL_S } from '@l4fleet/store';

export const DEFAULT_FLEET_NAME = 'default';
export const DEFAULT_GOBGPD_ADDRESS = '127.0.0.1:50051';
export const DEFAULT_BGP_LISTEN_PORT = -1; // connect out only: the router is the passive side
export const DEFAULT_HOLD_TIME_S = 3;
export const DEFAULT_KEEPALIVE_S = 1;
export const DEFAULT_BGP_PORT = 179;
export const DEFAULT_GRACEFUL_SHUTDOWN_MS = 2_000; // RFC 8326 §3: long enough for the router to reselect paths
export const DEFAULT_ETCD_PREFIX = '/l4fleet';
/** etcd.dialTimeoutMs: the store's per-endpoint dial deadline (also the agent's etcd probe timeout). */
export const DEFAULT_ETCD_DIAL_TIMEOUT_MS = DEFAULT_DIAL_TIMEOUT_MS;
/**
 * etcd.leaseTtlS: the node's registration, reports and election lease; the store's default (10 s), well above the
 * 5.5 s between two renewals when one meets a hung etcd member (TTL/3 + dialTimeoutMs + 200 ms: store
 * lease-keeper.ts), so a node keeps its lease while its client fails over. A dead agent's records vanish (and a new aggregator is elected) within it; the data path does
 * not wait for it (BGP hold time or BFD removes a dead node).
 */
export const DEFAULT_LEASE_TTL_S = STORE_LEASE_TTL_S;
export const DEFAULT_NATS_SUBJECT_PREFIX = 'l4fleet';
export const DEFAULT_MAX_PENDING_EVENTS = 1_000;
export const DEFAULT_METRICS_PORT = 9469;
export const DEFAULT_METRICS_LISTEN = `127.0.0.1:${DEFAULT_METRICS_PORT}`;
export const DEFAULT_NFT_TABLE = 'l4fleet';
/** dataplane.bpffsPath and dataplane.pinName: the bpf driver's own defaults. */
export const DEFAULT_BPFFS_PATH = DATAPLANE_BPFFS_PATH;
export const DEFAULT_BPF_PIN_NAME = DATAPLANE_PIN_NAME;
/**
 * dataplane.verifyIntervalS: how often the agent reads its data plane back and repairs what changed behind it (by
 * hand, another program); a hand edit costs at most about this long of the node's share of the traffic.
 */
export const DEFAULT_DATAPLANE_VERIFY_INTERVAL_S = 60;
export const DEFAULT_MAX_CONCURRENT_PROBES = 256;
export const DEFAULT_FORWARD_AFTER_WITHDRAW_MS = 3_000; // > BGP UPDATE propagation + FIB reprogramming
export const DEFAULT_STATE_DIR = '/var/lib/l4fleet'; // FHS: variable state that survives a reboot
export const DEFAULT_STATE_MAX_BYTES = 64 * 1024 * 1024; // 64 MiB
export const DEFAULT_STATE_MAX_AGE_S = 7 * 24 * 3_600; // 7 days
/** bfd.*IntervalMs and bfd.detectMultiplier: FRR bfdd's timers as the lab runs them (100 ms x 3 = 300 ms). */
export const DEFAULT_BFD_RECEIVE_INTERVAL_MS = DEFAULT_BFD_INTERVAL_MS;
export const DEFAULT_BFD_TRANSMIT_INTERVAL_MS = DEFAULT_BFD_INTERVAL_MS;
export { DEFAULT_BFD_DETECT_MULTIPLIER };
export const DEFAULT_BFD_VTY_DIR = '/var/run/frr'; // Debian's frr package: where bfdd puts bfdd.vty
export const DEFAULT_BFD_POLL_INTERVAL_MS = 1_000;
