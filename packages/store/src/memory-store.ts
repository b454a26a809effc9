/**
 * An in-memory FleetStore for unit tests of the agent and the CLI: same interface and semantics as the etcd one
 * (revision guard, seed generation, snapshots to watchers, leased records), no etcd. `expireNode(name)` plays a
 * lease expiry, `corruptDesired()` plays a hand-written invalid pointer. test/support/store-contract.ts runs one
 * suite of behaviour against this fake and the etcd store, so the two cannot drift.
 */
import { randomBytes } from 'node:crypto';
import type { Fleet, MemberRamp, MemberStatus, PoolHistory, TableHistory } from '@l4fleet/config';
import { appliedByText } from './codec.js';
import { EMPTY_FLEET } from './desired.js';
import { StoreError } from './errors.js';
import { fittedHistoryValue } from './history.js';
import { decodePoolHistory } from './history-record.js';
import { keys, NODE_NAME } from './layout.js';
import { MemoryDesiredHistory } from './memory-desired-history.js';
import { decodePoolStatus } from './record-check.js';
import { encodeDecidedPools, groupByPool, memberEntries, rampEntries } from './records.js';
import { DEFAULT_LEASE_TTL_S } from './registration.js';
import type {
  ApplyOptions,
  ApplyResult,
  DecidedState,
  DecidedWriteOptions,
  DesiredHistory,
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
  TableHistoryState,
  Watch,
  WatchListener,
} from './types.js';

type Topic = 'desired' | 'nodes' | 'health' | 'decided' | 'history' | 'leader';

export class MemoryFleetStore implements FleetStore {
  private revision = 0;
  private desired: DesiredState = { fleet: EMPTY_FLEET, revision: 0, generation: '' };
  private readonly nodes = new Map<string, NodeRecord>();
  private readonly drains = new Set<string>();
  private readonly statuses = new Map<string, NodeStatusReport>();
  /** Node -> its lease; no clock runs here: a renewed lease stays full until ageLease() plays time passing. */
  private readonly leases = new Map<string, NodeLease>();
  private readonly health = new Map<string, Map<string, MemberStatus>>();
  /** Pool -> the decided record as etcd would hold it (encoded, and decoded on read like the etcd store does). */
  private readonly decided = new Map<string, string>();
  /** Pool -> the history record as etcd would hold it (encoded, and decoded on read like the etcd store does). */
  private readonly history = new Map<string, string>();
  private readonly candidates: { node: string; elected: () => void; handle: Leadership & { drop(): void } }[] = [];
  private readonly listeners = new Map<Topic, Set<() => void>>();
  private closed = false;

  private bump(topic: Topic): void {
    this.revision += 1;
    for (const fn of this.listeners.get(topic) ?? []) fn();
  }

  private assertOpen(): void {
    if (this.closed) throw new StoreError('CLOSED', 'memory store: closed');
  }

  /** `initial`: deliver the current state at once (not for a corrupt pointer: there is none, like etcd). */
  private subscribe<T>(topic: Topic, read: () => T, listener: WatchListener<T>, initial = true): Watch {
    this.assertOpen();
    const fn = () => listener.onUpdate(read());
    let set = this.listeners.get(topic);
    if (!set) this.listeners.set(topic, (set = new Set()));
    set.add(fn);
    if (initial) fn();
    return { close: async () => void set.delete(fn) };
  }

  /** Every write of the pointer, as etcd's history holds them. */
  private readonly past = new MemoryDesiredHistory();

  /** Plays `etcdctl compact`: writes before `revision` are gone from the history. */
  compactDesiredHistory(revision: number): void {
    this.past.compact(revision);
  }

  async getDesiredHistory(options: { readonly limit: number }): Promise<DesiredHistory> {
    this.assertOpen();
    return this.past.history(options.limit);
  }

  async getDesiredAt(revision: number): Promise<DesiredState & { readonly appliedAt: string }> {
    this.assertOpen();
    return this.past.at(revision);
  }

  /** The pointer's revision: the last apply's, or the corruption's. */
  private pointerRevision = 0;
  /** Set by corruptDesired() until the next apply: what the etcd store reports for a pointer that does not decode. */
  private corrupt: StoreError | undefined;
  private readonly errorListeners = new Set<(e: StoreError) => void>();

  async getDesired(): Promise<DesiredState> {
    this.assertOpen();
    if (this.corrupt) throw this.corrupt;
    return this.desired;
  }

  async apply(fleet: Fleet, options: ApplyOptions = {}): Promise<ApplyResult> {
    this.assertOpen();
    if (options.recoverInvalid && !this.corrupt) {
      throw new StoreError(
        'CONFLICT',
        `recover: the desired state reads fine (${keys.pointer} at revision ${this.pointerRevision}); nothing to recover: apply normally`,
        { key: keys.pointer },
      );
    }
    const expect = options.expectRevision ?? this.pointerRevision;
    if (expect !== this.pointerRevision) {
      throw new StoreError(
        'CONFLICT',
        `apply: the desired state changed since revision ${expect} (now ${this.pointerRevision}); re-read and retry`,
      );
    }
    const stored = this.desired.fleet.hashSeed;
    const hashSeed = fleet.hashSeed ?? stored ?? randomBytes(4).readUInt32BE(0);
    const seedSource =
      fleet.hashSeed !== undefined ? 'fleet' : stored === undefined ? 'new' : this.corrupt ? 'salvaged' : 'stored';
    const generation = `mem-${this.revision + 1}`;
    this.desired = { fleet: structuredClone({ ...fleet, hashSeed }), revision: this.revision + 1, generation };
    this.pointerRevision = this.desired.revision;
    this.corrupt = undefined;
    this.bump('desired');
    const bytes = JSON.stringify(this.desired.fleet).length;
    const appliedAt = new Date().toISOString();
    const by = options.by === undefined ? '' : appliedByText(options.by);
    this.past.record(
      { revision: this.desired.revision, generation, appliedAt, bytes, ...(by === '' ? {} : { appliedBy: by }) },
      this.desired.fleet,
    );
    return { revision: this.desired.revision, generation, hashSeed, seedSource, bytes, chunks: 1 };
  }

  /**
   * Plays a hand-written pointer that does not decode: watchers get `INVALID_RECORD` and keep their last good
   * state, getDesired() rejects, until an apply (or a recovery: apply with recoverInvalid) replaces it.
   */
  corruptDesired(): void {
    this.revision += 1;
    this.pointerRevision = this.revision;
    this.corrupt = new StoreError('INVALID_RECORD', `${keys.pointer}: schema undefined is not 1 (memory store)`, {
      key: keys.pointer,
    });
    const invalid = this.corrupt.message;
    this.past.record({ revision: this.revision, generation: '', appliedAt: '', bytes: 0, invalid });
    for (const fn of this.errorListeners) fn(this.corrupt);
  }

  async watchDesired(listener: WatchListener<DesiredState>): Promise<Watch> {
    const onError = (e: StoreError) => listener.onError?.(e);
    this.errorListeners.add(onError);
    const w = this.subscribe('desired', () => this.desired, listener, !this.corrupt);
    if (this.corrupt) onError(this.corrupt);
    return {
      close: async () => {
        this.errorListeners.delete(onError);
        await w.close();
      },
    };
  }

  async registerNode(info: NodeInfo, options: NodeRegistrationOptions = {}): Promise<NodeRegistration> {
    this.assertOpen();
    if (!NODE_NAME.test(info.name))
      throw new StoreError('INVALID_STATE', `node: ${JSON.stringify(info.name)} is not a node name`);
    this.nodes.set(info.name, { ...info, registeredAt: new Date().toISOString() });
    const ttlS = options.leaseTtlS ?? DEFAULT_LEASE_TTL_S;
    this.leases.set(info.name, { remainingS: ttlS, grantedS: ttlS });
    this.bump('nodes');
    let open = true;
    return {
      name: info.name,
      reportHealth: async (members) => {
        if (!open) throw new StoreError('CLOSED', `node ${info.name}: registration closed`);
        await this.reportHealth(info.name, members);
      },
      reportStatus: async (status) => {
        if (!open) throw new StoreError('CLOSED', `node ${info.name}: registration closed`);
        this.statuses.set(info.name, { ...status, at: status.at ?? new Date().toISOString() });
        this.bump('nodes');
      },
      close: async () => {
        open = false;
        this.expireNode(info.name);
      },
    };
  }

  async nodeLeases(): Promise<ReadonlyMap<string, NodeLease>> {
    this.assertOpen();
    return new Map(this.leases);
  }

  /** Plays a node's agent not renewing for `seconds`: its lease's remaining time falls (not below 0). */
  ageLease(name: string, seconds: number): void {
    const lease = this.leases.get(name);
    if (lease) this.leases.set(name, { ...lease, remainingS: Math.max(0, lease.remainingS - seconds) });
  }

  /** Plays the expiry of a node's lease: its record, health reports and status vanish. */
  expireNode(name: string): void {
    this.leases.delete(name);
    this.nodes.delete(name);
    this.statuses.delete(name);
    this.health.delete(name);
    this.bump('nodes');
    this.bump('health');
  }

  private views(): NodeView[] {
    const names = new Set([...this.nodes.keys(), ...this.drains, ...this.statuses.keys()]);
    return [...names].sort().map((name) => ({
      name,
      record: this.nodes.get(name),
      drained: this.drains.has(name),
      status: this.statuses.get(name),
    }));
  }

  async listNodes(): Promise<NodeView[]> {
    this.assertOpen();
    return this.views();
  }

  async watchNodes(listener: WatchListener<NodeView[]>): Promise<Watch> {
    return this.subscribe('nodes', () => this.views(), listener);
  }

  async setNodeDrain(name: string, drained: boolean): Promise<void> {
    this.assertOpen();
    if (drained) this.drains.add(name);
    else this.drains.delete(name);
    this.bump('nodes');
  }

  async reportHealth(node: string, members: ReadonlyMap<string, MemberStatus>): Promise<void> {
    this.assertOpen();
    if (!this.nodes.has(node)) throw new StoreError('NOT_FOUND', `node ${node}: not registered`);
    groupByPool(members); // validates the member keys like the etcd store
    this.health.set(node, new Map(members));
    this.bump('health');
  }

  private reports(): HealthReport[] {
    return [...this.health.keys()].sort().map((node) => ({ node, members: new Map(this.health.get(node)) }));
  }

  async listHealthReports(): Promise<HealthReport[]> {
    this.assertOpen();
    return this.reports();
  }

  async watchHealthReports(listener: WatchListener<HealthReport[]>): Promise<Watch> {
    return this.subscribe('health', () => this.reports(), listener);
  }

  private decidedState(): DecidedState {
    const decided = new Map<string, MemberStatus>();
    const ramps = new Map<string, MemberRamp>();
    for (const [pool, value] of this.decided) {
      const rec = decodePoolStatus(keys.decidedPool(pool), Buffer.from(value));
      for (const [member, s] of memberEntries(rec)) decided.set(member, s);
      for (const [member, r] of rampEntries(rec)) ramps.set(member, r);
    }
    return { decided, ramps, revision: this.revision };
  }

  async writeDecided(decided: ReadonlyMap<string, MemberStatus>, options: DecidedWriteOptions = {}): Promise<void> {
    this.assertOpen();
    if (options.leadership && !options.leadership.isLeader()) {
      throw new StoreError('LEASE_LOST', `write decided: ${options.leadership.node} is not the leader`);
    }
    for (const [pool, value] of encodeDecidedPools(decided, options.ramps ?? new Map(), options.pools)) {
      this.decided.set(pool, value);
    }
    this.bump('decided');
  }

  async getDecided(): Promise<DecidedState> {
    this.assertOpen();
    return this.decidedState();
  }

  async watchDecided(listener: WatchListener<DecidedState>): Promise<Watch> {
    return this.subscribe('decided', () => this.decidedState(), listener);
  }

  private historyState(): TableHistoryState {
    const history = new Map<string, PoolHistory>();
    for (const [pool, value] of this.history) {
      history.set(pool, decodePoolHistory(keys.historyPool(pool), Buffer.from(value)));
    }
    return { history, revision: this.revision };
  }

  async writeTableHistory(history: TableHistory, options: { leadership?: Leadership } = {}): Promise<void> {
    this.assertOpen();
    if (options.leadership && !options.leadership.isLeader()) {
      throw new StoreError('LEASE_LOST', `write table history: ${options.leadership.node} is not the leader`);
    }
    this.history.clear();
    for (const [pool, h] of history) {
      const value = fittedHistoryValue(h);
      if (value !== undefined) this.history.set(pool, value);
    }
    this.bump('history');
  }

  async getTableHistory(): Promise<TableHistoryState> {
    this.assertOpen();
    return this.historyState();
  }

  async watchTableHistory(listener: WatchListener<TableHistoryState>): Promise<Watch> {
    return this.subscribe('history', () => this.historyState(), listener);
  }

  async campaign(node: string): Promise<Leadership> {
    this.assertOpen();
    return await new Promise<Leadership>((resolve) => {
      let leader = false;
      let resolveLost: (e: StoreError | undefined) => void = () => undefined;
      const lost = new Promise<StoreError | undefined>((r) => (resolveLost = r));
      const handle = {
        node,
        lost,
        isLeader: () => leader,
        resign: async () => handle.drop(),
        drop: () => {
          const i = this.candidates.findIndex((c) => c.handle === handle);
          if (i < 0) return;
          this.candidates.splice(i, 1);
          const was = leader;
          leader = false;
          resolveLost(undefined);
          if (was) this.promote();
        },
      };
      this.candidates.push({
        node,
        handle,
        elected: () => {
          leader = true;
          resolve(handle);
        },
      });
      if (this.candidates.length === 1) this.promote();
    });
  }

  private promote(): void {
    const next = this.candidates[0];
    next?.elected();
    this.bump('leader');
  }

  async getLeader(): Promise<string | undefined> {
    this.assertOpen();
    return this.candidates[0]?.handle.isLeader() ? this.candidates[0].node : undefined;
  }

  async observeLeader(listener: WatchListener<string | undefined>): Promise<Watch> {
    return this.subscribe(
      'leader',
      () => (this.candidates[0]?.handle.isLeader() ? this.candidates[0].node : undefined),
      listener,
    );
  }

  async close(): Promise<void> {
    this.closed = true;
    this.listeners.clear();
  }
}
