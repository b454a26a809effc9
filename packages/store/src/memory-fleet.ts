/**
 * What every client of one in-memory fleet shares (memory-store.ts): the stored records as etcd would hold them, the
 * election's candidates and the open watches. Each MemoryFleetStore is one client over it, as each EtcdFleetStore
 * is one client of an etcd: closing it ends only its own watches, campaigns and registrations.
 */
import type { MemberStatus } from '@l4fleet/config';
import { EMPTY_FLEET } from './desired.js';
import type { StoreError } from './errors.js';
import { MemoryDesiredHistory } from './memory-desired-history.js';
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

export class MemoryFleet {
  revision = 0;
  desired: DesiredState = { fleet: EMPTY_FLEET, revision: 0, generation: '' };
  readonly nodes = new Map<string, NodeRecord>();
  readonly drains = new Set<string>();
  readonly statuses = new Map<string, NodeStatusReport>();
  /** Node -> its lease; no clock runs here: a renewed lease stays full until ageLease() plays time passing. */
  readonly leases = new Map<string, NodeLease>();
  readonly health = new Map<string, Map<string, MemberStatus>>();
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
      record: this.nodes.get(name),
      drained: this.drains.has(name),
      status: this.statuses.get(name),
    }));
  }

  reports(): HealthReport[] {
    return [...this.health.keys()].sort().map((node) => ({ node, members: new Map(this.health.get(node)) }));
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
}
