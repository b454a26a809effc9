/**
 * FleetStore on etcd (the etcd3 client), composed of one module per concern, each working in the layout namespace:
 * desired state (desired.ts), nodes and health (nodes.ts), decided status (decided.ts), the aggregator election
 * (election.ts), table history (history.ts). The connection and its endpoint failover: connection.ts. Key layout: layout.ts and
 * docs/design/0002-etcd-layout.md. etcd3's types stay inside this package.
 */
import type { Fleet, MemberStatus, TableHistory } from '@l4fleet/config';
import { connect, type EtcdStoreOptions } from './connection.js';
import { DecidedStore } from './decided.js';
import { DesiredStore } from './desired.js';
import { ElectionStore } from './election.js';
import { HistoryStore } from './history.js';
import { NodeStore } from './nodes.js';
import { explainWriteFailure, type StatusProbe } from './quorum.js';
import type { StoreContext } from './store-context.js';
import type {
  ApplyOptions,
  ApplyResult,
  CampaignOptions,
  DecidedState,
  DecidedWriteOptions,
  DesiredHistory,
  DesiredState,
  FleetStore,
  HealthReport,
  Leadership,
  NodeInfo,
  NodeLease,
  NodeRegistration,
  NodeRegistrationOptions,
  NodeView,
  TableHistoryState,
  Watch,
  WatchListener,
} from './types.js';

export class EtcdFleetStore implements FleetStore {
  readonly #ctx: StoreContext;
  readonly #desired: DesiredStore;
  readonly #nodes: NodeStore;
  readonly #decided: DecidedStore;
  readonly #election: ElectionStore;
  readonly #history: HistoryStore;
  readonly #endpoints: readonly string[];
  readonly #status: StatusProbe;

  constructor(options: EtcdStoreOptions) {
    const { client, ns, close, status, attemptMs } = connect(options);
    this.#endpoints = options.endpoints;
    this.#status = status;
    this.#ctx = {
      client,
      ns,
      closeClient: close,
      attemptMs,
      log: options.logger.child({ component: 'store' }),
      closers: new Set(),
    };
    this.#desired = new DesiredStore(this.#ctx);
    this.#nodes = new NodeStore(this.#ctx);
    this.#decided = new DecidedStore(this.#ctx);
    this.#election = new ElectionStore(this.#ctx);
    this.#history = new HistoryStore(this.#ctx);
  }

  getDesired(): Promise<DesiredState> {
    return this.#explained(() => this.#desired.getDesired());
  }
  /**
   * An operator's call (the CLI reads the desired state, the decided status, the nodes, health reports, table
   * history or the leader before it writes or shows them; they are linearizable reads, refused without quorum like
   * the writes): a failure while etcd has no quorum says so, and so does a single endpoint that does not answer
   * (quorum.ts). The agent's watches and lease calls are not wrapped: it goes fail-static and says so itself.
   */
  async #explained<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw await explainWriteFailure(err, this.#endpoints, this.#status);
    }
  }

  apply(fleet: Fleet, options?: ApplyOptions): Promise<ApplyResult> {
    return this.#explained(() => this.#desired.apply(fleet, options));
  }
  watchDesired(listener: WatchListener<DesiredState>): Promise<Watch> {
    return this.#desired.watchDesired(listener);
  }
  getDesiredHistory(options: { readonly limit: number }): Promise<DesiredHistory> {
    return this.#explained(() => this.#desired.getDesiredHistory(options.limit));
  }
  getDesiredAt(revision: number): Promise<DesiredState & { readonly appliedAt: string }> {
    return this.#explained(() => this.#desired.getDesiredAt(revision));
  }

  registerNode(info: NodeInfo, options?: NodeRegistrationOptions): Promise<NodeRegistration> {
    return this.#nodes.registerNode(info, options);
  }
  listNodes(): Promise<NodeView[]> {
    return this.#explained(() => this.#nodes.listNodes());
  }
  nodeLeases(): Promise<ReadonlyMap<string, NodeLease>> {
    return this.#explained(() => this.#nodes.nodeLeases());
  }
  watchNodes(listener: WatchListener<NodeView[]>): Promise<Watch> {
    return this.#nodes.watchNodes(listener);
  }
  setNodeDrain(name: string, drained: boolean): Promise<void> {
    return this.#explained(() => this.#nodes.setNodeDrain(name, drained));
  }
  reportHealth(node: string, members: ReadonlyMap<string, MemberStatus>): Promise<void> {
    return this.#nodes.reportHealth(node, members);
  }
  listHealthReports(): Promise<HealthReport[]> {
    return this.#explained(() => this.#nodes.listHealthReports());
  }
  watchHealthReports(listener: WatchListener<HealthReport[]>): Promise<Watch> {
    return this.#nodes.watchHealthReports(listener);
  }

  writeDecided(decided: ReadonlyMap<string, MemberStatus>, options?: DecidedWriteOptions): Promise<void> {
    return this.#decided.writeDecided(decided, options);
  }
  getDecided(): Promise<DecidedState> {
    return this.#explained(() => this.#decided.getDecided());
  }
  watchDecided(listener: WatchListener<DecidedState>): Promise<Watch> {
    return this.#decided.watchDecided(listener);
  }

  writeTableHistory(history: TableHistory, options?: { leadership?: Leadership }): Promise<void> {
    return this.#history.writeTableHistory(history, options);
  }
  getTableHistory(): Promise<TableHistoryState> {
    return this.#explained(() => this.#history.getTableHistory());
  }
  watchTableHistory(listener: WatchListener<TableHistoryState>): Promise<Watch> {
    return this.#history.watchTableHistory(listener);
  }

  campaign(node: string, options?: CampaignOptions): Promise<Leadership> {
    return this.#election.campaign(node, options);
  }
  getLeader(): Promise<string | undefined> {
    return this.#explained(() => this.#election.getLeader());
  }
  observeLeader(listener: WatchListener<string | undefined>): Promise<Watch> {
    return this.#election.observeLeader(listener);
  }

  async close(): Promise<void> {
    // At once: each waits up to WATCH_CANCEL_WAIT_MS for a hung etcd's answer, and an agent has several watches.
    await Promise.all([...this.#ctx.closers].map((close) => close().catch(() => undefined)));
    this.#ctx.closers.clear();
    this.#nodes.abandonAll();
    this.#ctx.closeClient();
  }
}
