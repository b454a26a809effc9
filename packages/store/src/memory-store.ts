/**
 * An in-memory FleetStore for unit tests of the agent and the CLI: same interface and semantics as the etcd one
 * (revision guard, seed generation, snapshots to watchers, leased records: each registration has its own lease, each
 * record goes with the lease of its last put), no etcd. `expireNode(name)` plays a lease expiry, `corruptDesired()` plays a hand-written invalid pointer, `client()` opens another client of the same
 * fleet (memory-fleet.ts holds what they share). test/support/store-contract.ts runs one suite of behaviour against
 * this fake and the etcd store, so the two cannot drift.
 *
 * Watches are delivered as etcd's are: after the write, not inside it (each delivery queued as a microtask with the
 * state as the write left it). A watcher that throws does not fail the write, and one that writes from its callback
 * does not make the others miss a state or see one twice (FleetStore.watchDesired: every change once, in order).
 */
import { randomBytes } from 'node:crypto';
import type { Fleet, MemberRamp, MemberStatus, PoolHistory, TableHistory } from '@l4fleet/config';
import { appliedByText } from './codec.js';
import { StoreError, toStoreError } from './errors.js';
import { checkHistoryKeys, fittedHistoryValue } from './history.js';
import { decodePoolHistory } from './history-record.js';
import { keys } from './layout.js';
import { type MemoryCandidate, MemoryFleet, type MemoryLease, sameMap, type Topic } from './memory-fleet.js';
import { memoryRegistration } from './memory-registration.js';
import { assertNodeInfo } from './node-claim.js';
import { assertSameRegistration } from './nodes.js';
import { decodePoolStatus } from './record-check.js';
import { encodeDecidedPools, memberEntries, rampEntries } from './records.js';
import { DEFAULT_LEASE_TTL_S } from './registration.js';
import { assertNodeName } from './store-context.js';
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
  NodeView,
  TableHistoryState,
  Watch,
  WatchListener,
} from './types.js';

export class MemoryFleetStore implements FleetStore {
  private closed = false;
  /** This client's open watches, ended by close(). */
  private readonly watches = new Set<() => void>();
  /** This client's registrations by node name: a second registerNode of a name is checked against the first. */
  private readonly registrations = new Map<
    string,
    { reg: NodeRegistration; info: NodeInfo; ttlS: number; lease: MemoryLease }
  >();
  /** This client's campaigns, waiting or leading: close() ends them as the etcd store's close() does. */
  private readonly campaigns = new Set<MemoryCandidate>();

  /** `fleet`: the shared state of another client (client() passes it); absent, a new empty fleet. */
  constructor(private readonly fleet: MemoryFleet = new MemoryFleet()) {}

  /** Another client of the same fleet (as a second EtcdFleetStore on the same etcd prefix). */
  client(): MemoryFleetStore {
    return new MemoryFleetStore(this.fleet);
  }

  private assertOpen(): void {
    if (this.closed) throw new StoreError('CLOSED', 'memory store: closed');
  }

  /**
   * A watch of `topic`: `read` runs at each write (and at once when `initial`: not for a corrupt pointer, there is
   * none, like etcd), its value handed to the listener in a microtask, in order, until close().
   */
  private subscribe<T>(topic: Topic, read: () => T, listener: WatchListener<T>, initial = true): Watch {
    this.assertOpen();
    let open = true;
    const deliver = () => {
      const value = read();
      queueMicrotask(() => {
        if (!open) return;
        try {
          listener.onUpdate(value);
        } catch (err) {
          // Like the etcd store's watch handler: the listener's failure is reported to it, never the writer's.
          listener.onError?.(toStoreError(err, `watch ${topic}: listener`));
        }
      });
    };
    let set = this.fleet.listeners.get(topic);
    if (!set) this.fleet.listeners.set(topic, (set = new Set()));
    set.add(deliver);
    if (initial) deliver();
    const stop = () => {
      open = false;
      set.delete(deliver);
      this.watches.delete(stop);
    };
    this.watches.add(stop);
    return { close: async () => stop() };
  }

  /** Plays `etcdctl compact`: writes before `revision` are gone from the history. */
  compactDesiredHistory(revision: number): void {
    this.fleet.past.compact(revision);
  }

  async getDesiredHistory(options: { readonly limit: number }): Promise<DesiredHistory> {
    this.assertOpen();
    return this.fleet.past.history(options.limit);
  }

  async getDesiredAt(revision: number): Promise<DesiredState & { readonly appliedAt: string }> {
    this.assertOpen();
    return this.fleet.past.at(revision);
  }

  async getDesired(): Promise<DesiredState> {
    this.assertOpen();
    if (this.fleet.corrupt) throw this.fleet.corrupt;
    return this.fleet.desired;
  }

  async apply(fleet: Fleet, options: ApplyOptions = {}): Promise<ApplyResult> {
    this.assertOpen();
    const f = this.fleet;
    if (options.recoverInvalid && !f.corrupt) {
      throw new StoreError(
        'CONFLICT',
        `recover: the desired state reads fine (${keys.pointer} at revision ${f.pointerRevision}); nothing to recover: apply normally`,
        { key: keys.pointer },
      );
    }
    const expect = options.expectRevision ?? f.pointerRevision;
    if (expect !== f.pointerRevision) {
      throw new StoreError(
        'CONFLICT',
        `apply: the desired state changed since revision ${expect} (now ${f.pointerRevision}); re-read and retry`,
      );
    }
    // As the etcd store (desired.ts): over a corrupt pointer only the seed it still holds readably is kept; the last
    // good fleet's is not read back.
    const stored = f.corrupt ? f.corruptSeed : f.desired.fleet.hashSeed;
    const hashSeed = fleet.hashSeed ?? stored ?? randomBytes(4).readUInt32BE(0);
    const seedSource =
      fleet.hashSeed !== undefined ? 'fleet' : stored === undefined ? 'new' : f.corrupt ? 'salvaged' : 'stored';
    const generation = `mem-${f.revision + 1}`;
    f.desired = { fleet: structuredClone({ ...fleet, hashSeed }), revision: f.revision + 1, generation };
    f.pointerRevision = f.desired.revision;
    f.corrupt = undefined;
    f.corruptSeed = undefined;
    f.bump('desired');
    const bytes = JSON.stringify(f.desired.fleet).length;
    const appliedAt = new Date().toISOString();
    const by = options.by === undefined ? '' : appliedByText(options.by);
    f.past.record(
      { revision: f.desired.revision, generation, appliedAt, bytes, ...(by === '' ? {} : { appliedBy: by }) },
      f.desired.fleet,
    );
    return { revision: f.desired.revision, generation, hashSeed, seedSource, bytes, chunks: 1 };
  }

  /**
   * Plays a hand-written pointer that does not decode: watchers get `INVALID_RECORD` and keep their last good
   * state, getDesired() rejects, until an apply (or a recovery: apply with recoverInvalid) replaces it. `hashSeed`:
   * the seed field it still holds readably, which a recovery keeps (without one, a recovery draws a new seed).
   */
  corruptDesired(hashSeed?: number): void {
    const f = this.fleet;
    f.revision += 1;
    f.pointerRevision = f.revision;
    f.corrupt = new StoreError('INVALID_RECORD', `${keys.pointer}: schema undefined is not 1 (memory store)`, {
      key: keys.pointer,
    });
    f.corruptSeed = hashSeed;
    const invalid = f.corrupt.message;
    f.past.record({ revision: f.revision, generation: '', appliedAt: '', bytes: 0, invalid });
    for (const fn of f.errorListeners) fn(f.corrupt);
  }

  async watchDesired(listener: WatchListener<DesiredState>): Promise<Watch> {
    const f = this.fleet;
    const w = this.subscribe('desired', () => f.desired, listener, !f.corrupt);
    let open = true;
    // Queued like the updates, so an error comes after the states written before it.
    const onError = (e: StoreError) => queueMicrotask(() => open && listener.onError?.(e));
    const stop = () => {
      open = false;
      f.errorListeners.delete(onError);
      this.watches.delete(stop);
    };
    f.errorListeners.add(onError);
    this.watches.add(stop);
    if (f.corrupt) onError(f.corrupt);
    return {
      close: async () => {
        stop();
        await w.close();
      },
    };
  }

  async registerNode(info: NodeInfo, options: NodeRegistrationOptions = {}): Promise<NodeRegistration> {
    this.assertOpen();
    assertNodeName(info.name);
    assertNodeInfo(info);
    const ttlS = options.leaseTtlS ?? DEFAULT_LEASE_TTL_S;
    const held = this.registrations.get(info.name);
    if (held) {
      assertSameRegistration(held, info, ttlS);
      return held.reg;
    }
    const { reg, lease } = memoryRegistration(this.fleet, info, ttlS, () => this.registrations.delete(info.name));
    this.registrations.set(info.name, { reg, info, ttlS, lease });
    return reg;
  }

  async nodeLeases(): Promise<ReadonlyMap<string, NodeLease>> {
    this.assertOpen();
    return this.fleet.leases();
  }

  /** Plays a node's agent not renewing for `seconds`: its lease's remaining time falls (not below 0). */
  ageLease(name: string, seconds: number): void {
    const lease = this.fleet.nodes.get(name)?.lease;
    if (lease) lease.remainingS = Math.max(0, lease.remainingS - seconds);
  }

  /**
   * Plays a node's record rewritten by hand (etcdctl put on its lease), unchecked: for tests of what readers show of a
   * record registerNode refuses (the fake reads without decoding; the etcd store's readers refuse it: INVALID_RECORD).
   */
  overwriteNodeRecord(name: string, fields: Partial<NodeRecord>): void {
    const held = this.fleet.nodes.get(name);
    if (!held) throw new Error(`node ${JSON.stringify(name)}: not registered`);
    this.fleet.nodes.set(name, { ...held, value: { ...held.value, ...fields } });
    this.fleet.bump('nodes');
  }

  /** Plays the expiry of the leases holding a node's records: its record, health reports and status vanish. */
  expireNode(name: string): void {
    for (const lease of this.fleet.leasesOf(name)) this.fleet.endLease(lease);
  }

  async listNodes(): Promise<NodeView[]> {
    this.assertOpen();
    return this.fleet.views();
  }

  async watchNodes(listener: WatchListener<NodeView[]>): Promise<Watch> {
    return this.subscribe('nodes', () => this.fleet.views(), listener);
  }

  async setNodeDrain(name: string, drained: boolean): Promise<void> {
    this.assertOpen();
    assertNodeName(name);
    if (drained) this.fleet.drains.add(name);
    else this.fleet.drains.delete(name);
    this.fleet.bump('nodes');
  }

  /** Through this client's registration of `node`, as the etcd store's (nodes.ts). */
  async reportHealth(node: string, members: ReadonlyMap<string, MemberStatus>): Promise<void> {
    this.assertOpen();
    const held = this.registrations.get(node);
    if (!held) {
      throw new StoreError('NOT_FOUND', `node ${node}: not registered through this store (registerNode first)`);
    }
    await held.reg.reportHealth(members);
  }

  async listHealthReports(): Promise<HealthReport[]> {
    this.assertOpen();
    return this.fleet.reports();
  }

  async watchHealthReports(listener: WatchListener<HealthReport[]>): Promise<Watch> {
    return this.subscribe('health', () => this.fleet.reports(), listener);
  }

  private decidedState(): DecidedState {
    const decided = new Map<string, MemberStatus>();
    const ramps = new Map<string, MemberRamp>();
    for (const [pool, value] of this.fleet.decided) {
      const rec = decodePoolStatus(keys.decidedPool(pool), Buffer.from(value));
      for (const [member, s] of memberEntries(rec)) decided.set(member, s);
      for (const [member, r] of rampEntries(rec)) ramps.set(member, r);
    }
    // Every record here was written by writeDecided, which encodes only what decodes: none is refused.
    return {
      decided,
      ramps,
      revision: this.fleet.revision,
      pools: new Set(this.fleet.decided.keys()),
      refusedPools: new Set(),
    };
  }

  private assertLeading(leadership: Leadership | undefined, what: string): void {
    if (leadership && !leadership.isLeader()) {
      throw new StoreError('LEASE_LOST', `${what}: ${leadership.node} is not the leader`);
    }
  }

  async writeDecided(decided: ReadonlyMap<string, MemberStatus>, options: DecidedWriteOptions = {}): Promise<void> {
    this.assertOpen();
    this.assertLeading(options.leadership, 'write decided');
    const next = new Map(this.fleet.decided);
    for (const [pool, value] of encodeDecidedPools(decided, options.ramps ?? new Map(), options.pools)) {
      next.set(pool, value);
    }
    this.replace(this.fleet.decided, next, 'decided');
  }

  /** Makes `records` exactly `next`; a watch event only when a record changed (etcd: unchanged puts are skipped). */
  private replace(records: Map<string, string>, next: ReadonlyMap<string, string>, topic: Topic): void {
    if (sameMap(records, next)) return;
    records.clear();
    for (const [k, v] of next) records.set(k, v);
    this.fleet.bump(topic);
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
    for (const [pool, value] of this.fleet.history) {
      history.set(pool, decodePoolHistory(keys.historyPool(pool), Buffer.from(value)));
    }
    return { history, revision: this.fleet.revision };
  }

  async writeTableHistory(history: TableHistory, options: { leadership?: Leadership } = {}): Promise<void> {
    this.assertOpen();
    this.assertLeading(options.leadership, 'write table history');
    checkHistoryKeys(history);
    const next = new Map<string, string>();
    for (const [pool, h] of history) {
      const value = fittedHistoryValue(h);
      if (value !== undefined) next.set(pool, value);
    }
    this.replace(this.fleet.history, next, 'history');
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
    assertNodeName(node);
    return await this.fleet.campaign(node, this.campaigns);
  }

  async getLeader(): Promise<string | undefined> {
    this.assertOpen();
    return this.fleet.leader();
  }

  /** Like etcd's: the current leader, then each change once. */
  async observeLeader(listener: WatchListener<string | undefined>): Promise<Watch> {
    let last: string | undefined | null = null;
    const onUpdate = (leader: string | undefined) => {
      if (leader === last) return;
      last = leader;
      listener.onUpdate(leader);
    };
    return this.subscribe('leader', () => this.fleet.leader(), { ...listener, onUpdate });
  }

  /**
   * Ends this client as the etcd store's close() does: its watches stop, its leaderships end (the next candidate
   * is elected), its waiting campaigns are refused CLOSED and its registrations go (etcd leaves their leases to
   * expire, as a crash does: played here as that expiry at once), taking only the records still on their leases (a
   * node registered again by another client keeps what that client wrote). Other clients of the fleet go on.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const stop of [...this.watches]) stop();
    for (const c of [...this.campaigns]) c.end(new StoreError('CLOSED', `campaign of ${c.node}: the store was closed`));
    for (const [name, { lease }] of [...this.registrations]) {
      this.registrations.delete(name);
      this.fleet.endLease(lease);
    }
  }
}
