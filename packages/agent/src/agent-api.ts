/** The agent's public face: what createAgent() takes and returns, and what it reports. */
import type { Speaker } from '@l4fleet/bgp';
import type { MemberStatus } from '@l4fleet/config';
import type { DataPlane } from '@l4fleet/dataplane';
import type { BfdSessionState, FleetStore, NodeStatusReport, StoreError } from '@l4fleet/store';
import type { Logger } from 'pino';
import type { Bfdd } from './bfd/bfdd.js';
import type { Clock } from './clock.js';
import type { HostFacts } from './config/host.js';
import type { ReloadPlan } from './config/reload.js';
import type { AgentConfig } from './config/types.js';
import type { RejectedRecords } from './etcd/rejected-records.js';
import type { NatsLink } from './events/nats-link.js';
import type { EventPublisher } from './events/publisher.js';
import type { AgentEvent } from './events/subjects.js';
import type { ObservedStatus } from './health/hysteresis.js';
import type { Probe } from './health/probe.js';
import type { NodeState } from './lifecycle/node-state.js';
import type { AgentMetrics } from './observe/metrics.js';
import type { LastStateStore } from './persist/last-state.js';
import type { InputSource } from './serve/inputs.js';

export interface AgentDeps {
  readonly config: AgentConfig;
  readonly store: FleetStore;
  readonly speaker: Speaker;
  readonly dataPlane: DataPlane;
  readonly logger: Logger;
  /** NATS for events and fast health reports; undefined: events are counted as dropped, health goes by etcd. */
  readonly nats?: NatsLink;
  readonly clock?: Clock;
  readonly probe?: Probe;
  /** The roots https checks with verifyCertificate trust: health.caFile's content (readHealthCa); default Node's. */
  readonly healthCa?: Buffer;
  readonly metrics?: AgentMetrics;
  readonly version?: string;
  /** The last good inputs on disk; undefined: nothing saved, a start without etcd waits for etcd. */
  readonly lastState?: LastStateStore;
  /** The node's bfdd; default vtysh on bfd.vtyDir (used only with bfd.enabled). */
  readonly bfdd?: Bfdd;
  /** What this host offers, for a reload's checks of the fields it changes; default systemHost(). */
  readonly host?: HostFacts;
  /** Every event the agent emits, locally (tests). */
  readonly onEvent?: (e: AgentEvent) => void;
  /**
   * This serving node's node.name is held by another address (a CONFLICT naming the key and the holder): its
   * re-registration refused, its record found so, or etcd back with it while the state file is served. The agent
   * logs nodeNameTaken, writes no more reports under the name and starts no watches; it keeps its routes until the
   * caller stops it: runAgent shuts it down (drain: withdraw) and tells its own caller (RunAgentOptions.onNameTaken).
   */
  readonly onNameTaken?: (err: StoreError) => void;
}

export interface AgentStatus {
  readonly node: string;
  readonly state: NodeState;
  readonly failStatic: boolean;
  readonly etcdConnected: boolean;
  readonly ready: boolean;
  readonly aggregator: boolean;
  readonly desiredRevision: number;
  readonly tables: Readonly<Record<string, string>>;
  readonly announced: readonly string[];
  readonly routes: readonly string[];
  readonly decided: Readonly<Record<string, MemberStatus>>;
  readonly observed: Readonly<Record<string, ObservedStatus>>;
  readonly bgp: Readonly<Record<string, string>>;
  /** BFD session state per peer (bfd.enabled only), as the node's bfdd last reported it. */
  readonly bfd?: Readonly<Record<string, BfdSessionState>>;
  /** Where the served inputs came from: etcd, the state file (restarted without etcd), or nothing yet. */
  readonly inputSource: InputSource;
  /** Records the store refused since the start; undefined: none. */
  readonly rejectedRecords?: RejectedRecords;
  /** The data plane refused the last apply (it serves desiredRevision's tables still); undefined: none since. */
  readonly dataPlaneRefused?: { readonly revision: number; readonly reason: string };
}

/** The status record the node writes (`l4fleet status`): the store's, plus the records it had to reject. */
export type AgentStatusReport = NodeStatusReport & { readonly rejectedRecords?: RejectedRecords };

export interface Agent {
  /** Registers the node and starts watching; the node serves once the first desired state arrived (whenReady). */
  start(): Promise<void>;
  /** Resolves when the data plane holds the desired state and routes were set once; rejects after timeoutMs. */
  whenReady(timeoutMs?: number): Promise<void>;
  /** Local drain (SIGTERM path or tests); the operator's drain is the etcd flag (`l4fleet node drain`). */
  drain(): Promise<void>;
  undrain(): Promise<void>;
  /** SIGTERM: drain (graceful shutdown, withdraw), keep forwarding forwardAfterWithdrawMs, then close. */
  shutdown(): Promise<void>;
  /** Stops without touching routes or forwarding (a crash or restart looks the same to the fleet). */
  close(): Promise<void>;
  /** Asks for a reconcile pass and waits for it (tests, after injecting a change). */
  reconcile(): Promise<void>;
  /**
   * SIGHUP: agent.yaml read again (`load`), what changed applied when a reload can (bgp.peers: config/reload.ts),
   * or the whole reload refused with nothing changed (AgentError RELOAD_REFUSED naming each field, or load's
   * error); logged and counted either way (l4fleet_config_reloads_total{result}).
   */
  reload(load: () => Promise<AgentConfig>): Promise<ReloadPlan>;
  status(): AgentStatus;
  readonly metrics: AgentMetrics;
  readonly events: EventPublisher;
}
