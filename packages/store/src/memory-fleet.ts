/**
 * What every client of one in-memory fleet shares (memory-store.ts): the stored records as etcd would hold them, the
 * election's candidates and the open watches. Each MemoryFleetStore is one client over it, as each EtcdFleetStore
 * is one client of an etcd: closing it ends only its own watches, campaigns and registrations.
 */
import type { MemberStatus } from '@l4fleet/config';
import { EMPTY_FLEET } from './desired.js';
import type { StoreError } from './errors.js';
import { MemoryDesiredHistory } from './memory-desired-history.js';
import { memberEntries } from './records.js';
import type {
  DesiredState,
  HealthReport,
  Leadership,
  NodeLease,
  NodeRecord,
  NodeStatusReport,
  NodeView,
} from './types.js';

/** Same keys, same values (records compared encoded, as etcd compares bytes). */
export const sameMap = <K, V>(a: ReadonlyMap<K, V> | undefined, b: ReadonlyMap<K, V>): boolean =>
  a !== undefined && a.size === b.size && [...b].every(([k, v]) => a.has(k) && a.get(k) === v);

export type Topic = 'desired' | 'nodes' | 'health' | 'decided' | 'history' | 'leader';

/** A campaign waiting or leading; `end` is its resign, or its client's close() (then `closed`). */
export interface MemoryCandidate {
  readonly node: string;
  isLeader(): boolean;
  elected(): void;
  end(closed?: StoreError): void;
}

/**
 * A node registration's lease: the records put with it (the node record, the status, each pool's health) go when it
 * ends (close(): a revoke; a client's close() or expireNode(): its expiry), but only those still on it: as in etcd
 * each key is on the lease of its last put, so a node registered again by another client (a restarted agent) keeps
 * what that one has written when the first registration ends.
 */
export class MemoryLease {
  /** No clock runs here: a renewed lease stays full until ageLease() plays time passing. */
  remainingS: number;
  ended = false;

  constructor(readonly grantedS: number) {
    this.remainingS = grantedS;
  }
}

/** A record as etcd holds it with the lease of its last put. */
export interface Leased<T> {
  readonly value: T;
  readonly lease: MemoryLease;
}

export class MemoryFleet {
  revision = 0;
  desired: DesiredState = { fleet: EMPTY_FLEET, revision: 0, generation: '' };
  readonly nodes = new Map<string, Leased<NodeRecord>>();
  readonly drains = new Set<string>();
  readonly statuses = new Map<string, Leased<NodeStatusReport>>();
  /** Node -> pool -> that pool's members as `health/<node>/<pool>` holds them. */
  readonly health = new Map<string, Map<string, Leased<Readonly<Record<string, MemberStatus>>>>>();
  /** Pool -> the decided record as etcd would hold it (encoded, and decoded on read like the etcd store does). */
  readonly decided = new Map<string, string>();
  /** Pool -> the history record as etcd would hold it (encoded, and decoded on read like the etcd store does). */
  readonly history = new Map<string, string>();
  /** In campaign order: the first one leads. */
  readonly candidates: MemoryCandidate[] = [];
  /** Topic -> each open watch's delivery, which reads the state when called and hands it over later. */
  readonly listeners = new Map<Topic, Set<() => void>>();
  /** Every write of the pointer, as etcd's history holds them. */
  readonly past = new MemoryDesiredHistory();
  /** The pointer's revision: the last apply's, or the corruption's. */
  pointerRevision = 0;
  /** Set by corruptDesired() until the next apply: what the etcd store reports for a pointer that does not decode. */
  corrupt: StoreError | undefined;
  /** The hash seed the corrupt pointer still holds readably (the etcd store salvages only that one). */
  corruptSeed: number | undefined;
  readonly errorListeners = new Set<(e: StoreError) => void>();

  /** A write: a new revision, and every watch of `topic` takes the state as it is now. */
  bump(topic: Topic): void {
    this.revision += 1;
    for (const deliver of this.listeners.get(topic) ?? []) deliver();
  }

  /**
   * A campaign, resolved once it leads; `owned` is its client's set (its close() ends them). Ended by resign or by
   * that close(): a leader's `lost` resolves (undefined, as a resign) and the next candidate is elected, a waiting
   * campaign is refused CLOSED (etcd store election.ts).
   */
  campaign(node: string, owned: Set<MemoryCandidate>): Promise<Leadership> {
    return new Promise<Leadership>((resolve, reject) => {
      let leader = false;
      let resolveLost: (e: StoreError | undefined) => void = () => undefined;
      const lost = new Promise<StoreError | undefined>((r) => (resolveLost = r));
      const candidate: MemoryCandidate = {
        node,
        isLeader: () => leader,
        elected: () => {
          leader = true;
          resolve(handle);
        },
        end: (closed) => {
          owned.delete(candidate);
          const i = this.candidates.indexOf(candidate);
          if (i < 0) return;
          this.candidates.splice(i, 1);
          const was = leader;
          leader = false;
          resolveLost(undefined);
          if (was) this.promote();
          else if (closed) reject(closed);
        },
      };
      const handle: Leadership = { node, lost, isLeader: () => leader, resign: async () => candidate.end() };
      owned.add(candidate);
      this.candidates.push(candidate);
      if (this.candidates.length === 1) this.promote();
    });
  }

  promote(): void {
    this.candidates[0]?.elected();
    this.bump('leader');
  }

  leader(): string | undefined {
    return this.candidates[0]?.isLeader() ? this.candidates[0].node : undefined;
  }

  views(): NodeView[] {
    const names = new Set([...this.nodes.keys(), ...this.drains, ...this.statuses.keys()]);
    return [...names].sort().map((name) => ({
      name,
      record: this.nodes.get(name)?.value,
      drained: this.drains.has(name),
      status: this.statuses.get(name)?.value,
    }));
  }

  reports(): HealthReport[] {
    return [...this.health]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([node, pools]) => ({
        node,
        members: new Map([...pools].flatMap(([pool, { value }]) => memberEntries({ pool, members: value }))),
      }));
  }

  /** Each node's lease as etcd answers for the one its `nodes/<name>` key is on. */
  leases(): Map<string, NodeLease> {
    const leases = new Map<string, NodeLease>();
    for (const [name, { lease }] of this.nodes) {
      leases.set(name, { remainingS: lease.remainingS, grantedS: lease.grantedS });
    }
    return leases;
  }

  /** Puts (`members`) or deletes (undefined) `health/<node>/<pool>`, on `lease`. */
  setHealth(
    node: string,
    pool: string,
    members: Readonly<Record<string, MemberStatus>> | undefined,
    lease: MemoryLease,
  ): void {
    let pools = this.health.get(node);
    if (members !== undefined) {
      if (!pools) this.health.set(node, (pools = new Map()));
      pools.set(pool, { value: members, lease });
    } else if (pools?.delete(pool) && pools.size === 0) {
      this.health.delete(node);
    }
  }

  /**
   * Ends `lease` (revoked or expired): the records still on it vanish, a watch event for each family that lost one
   * (etcd: a delete event per key; none when no key is left on it).
   */
  endLease(lease: MemoryLease): void {
    if (lease.ended) return;
    lease.ended = true;
    const drop = <T>(records: Map<string, Leased<T>>): boolean => {
      const gone = [...records].filter(([, r]) => r.lease === lease).map(([k]) => k);
      for (const k of gone) records.delete(k);
      return gone.length > 0;
    };
    const nodes = [drop(this.nodes), drop(this.statuses)].includes(true);
    let health = false;
    for (const [node, pools] of [...this.health]) {
      if (!drop(pools)) continue;
      health = true;
      if (pools.size === 0) this.health.delete(node);
    }
    if (nodes) this.bump('nodes');
    if (health) this.bump('health');
  }

  /** The leases holding any record of node `name` (its record, status, health). */
  leasesOf(name: string): Set<MemoryLease> {
    const held = [this.nodes.get(name), this.statuses.get(name), ...(this.health.get(name)?.values() ?? [])];
    return new Set(held.flatMap((r) => (r === undefined ? [] : [r.lease])));
  }
}
