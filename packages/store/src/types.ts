/** The store's public shapes, shared by the etcd adapter and the in-memory fake. */
import type { Fleet, MemberRamps, MemberStatus, TableHistory } from '@l4fleet/config';
import type { StoreError } from './errors.js';

export interface DesiredState {
  readonly fleet: Fleet;
  /** etcd revision of the pointer key (0 when nothing was ever applied); pass it to apply() as expectRevision. */
  readonly revision: number;
  /** Generation id of the stored document ('' when empty). */
  readonly generation: string;
}

export interface ApplyOptions {
  /**
   * Apply only if the desired state is still at this revision (from getDesired()); 0 = only if nothing is stored.
   * Omitted: the store reads the current revision itself (last writer wins, still one atomic switch).
   */
  readonly expectRevision?: number;
  /**
   * Recovery of a pointer (`desired/current`) that does not decode (StoreError `INVALID_RECORD`): replace it, guarded
   * by its revision, keeping its hash seed when that field is still readable. Fails with CONFLICT when the pointer
   * is valid (then there is nothing to recover: apply normally).
   */
  readonly recoverInvalid?: boolean;
  /**
   * Who writes it, for the history (`alice@ops1 (l4fleet apply)`); stored with the write as given (control characters
   * out, at most 200 characters). Self-reported: with etcd auth, etcd's user is what is checked.
   */
  readonly by?: string;
}

export interface ApplyResult {
  readonly revision: number;
  readonly generation: string;
  /** The seed stored with the fleet: the file's, else the stored one, else a fresh random one. */
  readonly hashSeed: number;
  /**
   * Where hashSeed came from: the fleet given, the stored fleet, the readable field of a pointer that did not decode
   * (a recovery), or new (every flow moves).
   */
  readonly seedSource?: 'fleet' | 'stored' | 'salvaged' | 'new';
  /** Bytes written for the document (after compression), and their chunk count. */
  readonly bytes: number;
  readonly chunks: number;
}

/** One write of the desired state that etcd still holds (getDesiredHistory). */
export interface DesiredRevision {
  /** The etcd revision of that write of the pointer: getDesiredAt() takes it. */
  readonly revision: number;
  /** Generation id of the document written ('' when the pointer does not decode). */
  readonly generation: string;
  /** ISO time the fleet was applied (the pointer's own `appliedAt`; '' when it does not decode). */
  readonly appliedAt: string;
  /** Who wrote it, as the writer said (ApplyOptions.by); absent when not said (or written before it existed). */
  readonly appliedBy?: string;
  /** Bytes of the document (after compression). */
  readonly bytes: number;
  /** Why the pointer written then does not decode (written by hand, say); absent for a good one. */
  readonly invalid?: string;
}

export interface DesiredHistory {
  /** Newest first: the write behind the current desired state, then the earlier ones. */
  readonly revisions: readonly DesiredRevision[];
  /** The walk stopped at the limit: earlier writes may be there. */
  readonly more: boolean;
  /** Earlier writes existed but etcd compacted them away (its history ends there). */
  readonly compacted: boolean;
  /**
   * The walk ended where the pointer was absent though the fleet's decided or history records were there: it was
   * deleted outside l4fleet (now, with no write listed, or before the oldest one listed, a recover). Writes before the
   * deletion are not listed; getDesiredAt() still reads them while etcd holds them.
   */
  readonly pointerDeleted?: true;
}

/**
 * What an agent registers about itself. registerNode refuses (INVALID_STATE, naming the field and the value) what
 * readers of the record would refuse: a name that is not a node name, an address that is not an IP address, a version
 * with a control character or over 1,024 chars.
 */
export interface NodeInfo {
  readonly name: string;
  /** Address the node is reachable at (for operators), optional: an IPv4 or IPv6 address. */
  readonly address?: string;
  /** Agent version, optional: no control characters (`get nodes` prints it), at most 1,024 chars. */
  readonly version?: string;
}

export interface NodeRecord extends NodeInfo {
  /** ISO time of (re-)registration. */
  readonly registeredAt: string;
}

/** Status a node publishes for `l4fleet status` (leased: vanishes with the node). */
export interface NodeStatusReport {
  /** Table checksum per VIP key, from @l4fleet/config buildVipTable(). */
  readonly tables: Readonly<Record<string, string>>;
  /** VIP keys the node currently announces over BGP. */
  readonly announced: readonly string[];
  /** BGP session state per peer (free text from the speaker, e.g. `established`). */
  readonly bgp: Readonly<Record<string, string>>;
  /** True when the node serves its last good tables because it lost etcd (fail static). */
  readonly failStatic: boolean;
  /** Desired-state revision the tables were built from. */
  readonly desiredRevision: number;
  /** ISO time of the report. */
  readonly at?: string;
  /**
   * BFD session state per peer address as the node's bfdd reports it (RFC 5880 §4.1 states; FRR's names:
   * `shutdown` is AdminDown). Absent when the node runs no BFD; a peer bfdd did not answer for is left out. As read:
   * `unknown` for a state this version has no word for (a newer agent's, during a rolling upgrade); never written.
   */
  readonly bfd?: Readonly<Record<string, BfdSessionState | typeof BFD_STATE_UNKNOWN>>;
  /**
   * Members this node observes down (`pool/member`), with the reason of the probe that took each down and when (ms
   * since the epoch): `status 503 (expected 200)`, `ERR_TLS_CERT_ALTNAME_INVALID`, `timeout`. Absent when it sees
   * none down; at most MAX_PROBE_FAILURES_PER_STATUS, the rest counted in probeFailuresOmitted.
   */
  readonly probeFailures?: Readonly<Record<string, ProbeFailureReport>>;
  readonly probeFailuresOmitted?: number;
}

/** Why one node sees a member down. */
export interface ProbeFailureReport {
  readonly reason: string;
  readonly sinceMs: number;
}

/** The BFD session states a status record may carry (RFC 5880 §4.1 State, as FRR's bfdd names them). */
export const BFD_SESSION_STATES = ['up', 'down', 'init', 'shutdown'] as const;
export type BfdSessionState = (typeof BFD_SESSION_STATES)[number];
/** How a reader shows a BFD state written by a newer agent that it does not know (the record is kept). */
export const BFD_STATE_UNKNOWN = 'unknown';

/** One row of listNodes(): registration, operator drain flag and last status, merged by name. */
export interface NodeView {
  readonly name: string;
  /** Undefined when the node's lease is gone (agent dead) but a drain flag remains. */
  readonly record: NodeRecord | undefined;
  readonly drained: boolean;
  readonly status: NodeStatusReport | undefined;
}

/**
 * A registered node's lease as etcd counts it (LeaseTimeToLive). A live agent renews every third of the TTL
 * (lease-keeper.ts), so `remainingS` stays near `grantedS`; a dead one's falls to 0, when its keys vanish.
 */
export interface NodeLease {
  /** Seconds etcd still gives the lease (whole seconds, as etcd answers). */
  readonly remainingS: number;
  /** The lease's TTL as granted, in seconds. */
  readonly grantedS: number;
}

/** A node's health view: member key (`pool/member`) -> status. */
export interface HealthReport {
  readonly node: string;
  readonly members: ReadonlyMap<string, MemberStatus>;
}

export interface DecidedWriteOptions {
  /** Fences the write: it applies only while this leadership holds. */
  readonly leadership?: Leadership;
  /** The members in slow start (none decided `down`); absent: none. */
  readonly ramps?: MemberRamps;
  /** Pools whose record is written even with no decision and no ramp (where a ramp ended). */
  readonly pools?: Iterable<string>;
}

export interface DecidedState {
  /** Member key (`pool/member`) -> decided status. */
  readonly decided: ReadonlyMap<string, MemberStatus>;
  /** Member key -> its slow-start step (@l4fleet/config slow-start.ts); only members `up` in `decided`. */
  readonly ramps: MemberRamps;
  readonly revision: number;
  /**
   * Pools whose `decided/<pool>` record is served: read now or, in a watch, the last good one kept. A record with no
   * member (the aggregator writes one for a removed pool whose slow start ended) is here with no decision in
   * `decided`. The stores always set it; absent in a state built by hand.
   */
  readonly pools?: ReadonlySet<string>;
  /**
   * Pools whose `decided/<pool>` key holds a record the store refused, with no good one served instead (a refusal on
   * a watch's first read; a watch keeps a refused key's last good record, that pool is in `pools`). Its members have
   * no decision here while every node that reads the record has some (the agent's state file stands in for them:
   * agent etcd/decided-fallback.ts). A pool leaves it on a good record or a delete of its key. Absent: none.
   */
  readonly refusedPools?: ReadonlySet<string>;
}

/** The table history of every pool with second chance (`history/<pool>`, docs/design/0011-second-chance.md). */
export interface TableHistoryState {
  /** Pool name -> its history. */
  readonly history: TableHistory;
  readonly revision: number;
}

export interface NodeRegistrationOptions {
  /** Lease TTL in seconds; default 10. The node vanishes this long after its agent dies. */
  readonly leaseTtlS?: number;
  /** Called when the lease was lost and re-registration starts (e.g. etcd unreachable longer than the TTL). */
  readonly onLeaseLost?: (err: StoreError) => void;
  /** Called when the node is registered again on a new lease, with its health and status re-written. */
  readonly onReregistered?: () => void;
  /**
   * Called once when the name turns out held by another address (a CONFLICT naming the key and the holder): a
   * re-registration refused, or the record found so at a renewal. The registration then stops acting as that node:
   * no more attempts, reportHealth and reportStatus refused (CONFLICT); close() still ends its own lease.
   */
  readonly onNameTaken?: (err: StoreError) => void;
}

/** A registered node; its keys live on one lease kept alive until close(). */
export interface NodeRegistration {
  readonly name: string;
  /** Publishes this node's health view (leased); only pools whose view changed are written. */
  reportHealth(members: ReadonlyMap<string, MemberStatus>): Promise<void>;
  /** Publishes this node's status record (leased). */
  reportStatus(status: NodeStatusReport): Promise<void>;
  /** Revokes the lease: the node, its health reports and status vanish at once. */
  close(): Promise<void>;
}

export interface Leadership {
  readonly node: string;
  /** Resolves when leadership is lost (lease lost) or resigned. */
  readonly lost: Promise<StoreError | undefined>;
  /** True until lost or resigned. */
  isLeader(): boolean;
  resign(): Promise<void>;
}

export interface CampaignOptions {
  /** Election lease TTL in seconds; default 10: a dead leader is replaced after at most this. */
  readonly leaseTtlS?: number;
}

/** A running watch; close() stops it. */
export interface Watch {
  close(): Promise<void>;
}

export interface WatchListener<T> {
  /** The new state; called once at start with the current state, then after every change. */
  onUpdate(value: T): void;
  /** A problem the watch recovers from by itself (invalid stored state, compaction, reconnect failures). */
  onError?(err: StoreError): void;
}

/** The store as the agent and the CLI see it; EtcdFleetStore and MemoryFleetStore implement it. */
export interface FleetStore {
  getDesired(): Promise<DesiredState>;
  apply(fleet: Fleet, options?: ApplyOptions): Promise<ApplyResult>;
  /**
   * Current desired state, then every change exactly once and in order: resumes from the last seen revision after
   * a reconnect or an etcd restart; a compacted revision triggers a full re-read. Invalid stored state is reported
   * through onError and not delivered, so the consumer keeps its last good state.
   */
  watchDesired(listener: WatchListener<DesiredState>): Promise<Watch>;
  /**
   * The writes of the desired state etcd still holds (its MVCC history: until a compaction removes them), newest
   * first, at most `limit` (1-1,000).
   */
  getDesiredHistory(options: { readonly limit: number }): Promise<DesiredHistory>;
  /**
   * The fleet as one earlier write left it (a revision getDesiredHistory() lists). NOT_FOUND when that revision is no
   * write of the desired state; COMPACTED when etcd no longer holds it; INVALID_RECORD when it does not decode.
   */
  getDesiredAt(revision: number): Promise<DesiredState & { readonly appliedAt: string }>;

  registerNode(info: NodeInfo, options?: NodeRegistrationOptions): Promise<NodeRegistration>;
  listNodes(): Promise<NodeView[]>;
  /** Node name -> its lease's remaining time, for every node registered now (an expired lease is left out). */
  nodeLeases(): Promise<ReadonlyMap<string, NodeLease>>;
  watchNodes(listener: WatchListener<NodeView[]>): Promise<Watch>;
  /** Operator drain flag; not leased, so it survives agent restarts and lease loss. */
  setNodeDrain(name: string, drained: boolean): Promise<void>;
  /** Same as the registration's reportHealth, for a node registered through this store. */
  reportHealth(node: string, members: ReadonlyMap<string, MemberStatus>): Promise<void>;
  listHealthReports(): Promise<HealthReport[]>;
  watchHealthReports(listener: WatchListener<HealthReport[]>): Promise<Watch>;

  /** Writes decided status for the pools present in `decided` (only changed pools); fenced by `leadership`. */
  writeDecided(decided: ReadonlyMap<string, MemberStatus>, options?: DecidedWriteOptions): Promise<void>;
  getDecided(): Promise<DecidedState>;
  watchDecided(listener: WatchListener<DecidedState>): Promise<Watch>;

  /** Makes the stored table history exactly `history` (changed pools put, others deleted); fenced by `leadership`. */
  writeTableHistory(history: TableHistory, options?: { leadership?: Leadership }): Promise<void>;
  getTableHistory(): Promise<TableHistoryState>;
  /** Like watchDecided: a record that goes bad keeps its pool's last good history. */
  watchTableHistory(listener: WatchListener<TableHistoryState>): Promise<Watch>;

  /** Campaigns for the aggregator role; resolves once elected. */
  campaign(node: string, options?: CampaignOptions): Promise<Leadership>;
  getLeader(): Promise<string | undefined>;
  /** Leader changes (undefined: no leader). */
  observeLeader(listener: WatchListener<string | undefined>): Promise<Watch>;

  close(): Promise<void>;
}
