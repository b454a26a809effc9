/**
 * Nodes and their health: registrations (leased), operator drain flags, node status records and per-pool health
 * reports. Every record read back is decoded by record-check.ts; a bad one is reported through onError and left
 * out while the good ones are delivered.
 */
import type { MemberStatus } from '@l4fleet/config';
import { invalidRecord, StoreError, toStoreError } from './errors.js';
import { keys, NODE_NAME } from './layout.js';
import { MAX_KEYS_PER_FAMILY } from './limits.js';
import { assertNodeInfo } from './node-claim.js';
import { type CachedKv, rangeInPages, readPrefix } from './prefix-cache.js';
import {
  checkHealthKey,
  decodeDrain,
  decodeNodeRecord,
  decodeNodeStatus,
  decodePoolStatus,
  type PoolStatusRecord,
} from './record-check.js';
import { warnInvalidRecord, watchRecordGroup } from './record-family.js';
import { memberEntries } from './records.js';
import { DEFAULT_LEASE_TTL_S, EtcdNodeRegistration } from './registration.js';
import { assertNodeName, type StoreContext } from './store-context.js';
import type {
  HealthReport,
  NodeInfo,
  NodeLease,
  NodeRecord,
  NodeRegistration,
  NodeRegistrationOptions,
  NodeStatusReport,
  NodeView,
  Watch,
  WatchListener,
} from './types.js';

const decodeNode = (k: string, v: Buffer): NodeRecord => decodeNodeRecord(k, v, keys.nodes);
const decodeDrainFlag = (k: string, v: Buffer): true => decodeDrain(k, v, keys.drains);
const decodeStatus = (k: string, v: Buffer): NodeStatusReport => decodeNodeStatus(k, v, keys.statuses);
/** A health record: `health/<node>/<pool>`, both segments checked. */
const decodeHealth = (k: string, v: Buffer): PoolStatusRecord => {
  checkHealthKey(k, keys.health);
  return decodePoolStatus(k, v);
};

function nodeViews(
  nodes: ReadonlyMap<string, CachedKv<NodeRecord>>,
  drains: ReadonlyMap<string, CachedKv<true>>,
  statuses: ReadonlyMap<string, CachedKv<NodeStatusReport>>,
): NodeView[] {
  const tail = (k: string) => k.slice(k.lastIndexOf('/') + 1);
  const names = new Set([...nodes.keys(), ...drains.keys(), ...statuses.keys()].map(tail));
  return [...names].sort().map((name) => ({
    name,
    record: nodes.get(keys.node(name))?.value,
    drained: drains.has(keys.drain(name)),
    status: statuses.get(keys.status(name))?.value,
  }));
}

/** LeaseTimeToLive calls in flight at once: a fleet of hundreds of nodes asks in rounds, not all at once. */
const LEASE_QUERIES_AT_ONCE = 32;

/** etcd's answer for one lease, checked: whole seconds, -1 for an expired lease (left out: undefined). */
function leaseFromAnswer(key: string, ttl: unknown, granted: unknown): NodeLease | undefined {
  const remainingS = Number(ttl);
  const grantedS = Number(granted);
  if (!Number.isSafeInteger(remainingS) || remainingS < -1 || !Number.isSafeInteger(grantedS) || grantedS < 0) {
    throw invalidRecord(key, `lease: etcd answered TTL ${String(ttl)}, granted TTL ${String(granted)}`);
  }
  return remainingS < 0 ? undefined : { remainingS, grantedS };
}

function healthReports(snap: ReadonlyMap<string, CachedKv<PoolStatusRecord>>): HealthReport[] {
  const byNode = new Map<string, Map<string, MemberStatus>>();
  for (const [key, { value }] of snap) {
    const node = key.slice(keys.health.length, key.lastIndexOf('/'));
    let m = byNode.get(node);
    if (!m) byNode.set(node, (m = new Map()));
    for (const [member, s] of memberEntries(value)) m.set(member, s);
  }
  return [...byNode].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([node, members]) => ({ node, members }));
}

/**
 * registerNode() of a name this client holds a registration of: the same info and lease TTL is that registration;
 * anything else is refused, naming the field (the node record etcd holds would silently keep the first one's).
 */
export function assertSameRegistration(
  held: { readonly info: NodeInfo; readonly ttlS: number },
  info: NodeInfo,
  ttlS: number,
): void {
  const show = (v: unknown) => (v === undefined ? 'none' : JSON.stringify(v));
  const differs = (field: string, was: unknown, now: unknown) =>
    new StoreError(
      'INVALID_STATE',
      `register node ${JSON.stringify(info.name)}: registered already through this store with ${field} ${show(was)}, not ${show(now)}; close that registration first`,
    );
  if (held.info.address !== info.address) throw differs('address', held.info.address, info.address);
  if (held.info.version !== info.version) throw differs('version', held.info.version, info.version);
  if (held.ttlS !== ttlS) throw differs('leaseTtlS', held.ttlS, ttlS);
}

/** A name this client registers: `reg` once its create went through (`created` resolved). */
interface HeldName {
  readonly info: NodeInfo;
  readonly ttlS: number;
  readonly created: Promise<EtcdNodeRegistration>;
  reg?: EtcdNodeRegistration;
}

export class NodeStore {
  /**
   * This client's registrations by node name, each held from its registerNode call on, before the create's first
   * await: a second call for the name while etcd grants the lease finds it, as one made after the first resolved.
   */
  private readonly registrations = new Map<string, HeldName>();

  private readonly warnInvalid: (err: StoreError) => void;

  constructor(private readonly ctx: StoreContext) {
    this.warnInvalid = warnInvalidRecord(ctx);
  }

  /**
   * One registration per name on this client: a second call, made before or after the first resolved, is that
   * registration (its create's result, a failure included) when the info and TTL are the same, else refused.
   */
  async registerNode(info: NodeInfo, options: NodeRegistrationOptions = {}): Promise<NodeRegistration> {
    assertNodeName(info.name);
    assertNodeInfo(info);
    const ttlS = options.leaseTtlS ?? DEFAULT_LEASE_TTL_S;
    const held = this.registrations.get(info.name);
    if (held) {
      assertSameRegistration(held, info, ttlS);
      return await held.created;
    }
    const created = EtcdNodeRegistration.create(this.ctx.ns, info, options, this.ctx.log, this.ctx.attemptMs).then(
      (reg) => {
        // The store closed meanwhile (abandonAll let go of the name): not kept, as the registrations it ended.
        if (this.registrations.get(info.name) !== entry) {
          reg.abandon();
          throw new StoreError('CLOSED', `register node ${JSON.stringify(info.name)}: the store was closed`);
        }
        entry.reg = reg;
        const close = reg.close.bind(reg);
        return Object.assign(reg, {
          close: async () => {
            // Only this registration's hold: closed again after the name was registered anew, it keeps that one.
            if (this.registrations.get(info.name) === entry) this.registrations.delete(info.name);
            await close();
          },
        });
      },
      (err: unknown) => {
        // Not registered: the name is free for the next call.
        if (this.registrations.get(info.name) === entry) this.registrations.delete(info.name);
        throw err;
      },
    );
    const entry: HeldName = { info, ttlS, created };
    this.registrations.set(info.name, entry);
    return await created;
  }

  async listNodes(): Promise<NodeView[]> {
    try {
      const [nodes, drains, statuses] = await Promise.all([
        readPrefix(this.ctx.ns, keys.nodes, decodeNode, this.warnInvalid),
        readPrefix(this.ctx.ns, keys.drains, decodeDrainFlag, this.warnInvalid),
        readPrefix(this.ctx.ns, keys.statuses, decodeStatus, this.warnInvalid),
      ]);
      return nodeViews(nodes.entries, drains.entries, statuses.entries);
    } catch (err) {
      throw toStoreError(err, 'list nodes');
    }
  }

  /** One LeaseTimeToLive per registered node, on the lease etcd holds its `nodes/<name>` key with. */
  async nodeLeases(): Promise<ReadonlyMap<string, NodeLease>> {
    try {
      const { kvs } = await rangeInPages(this.ctx.ns, keys.nodes, MAX_KEYS_PER_FAMILY);
      const held = kvs
        .map((kv) => ({ key: kv.key.toString(), lease: kv.lease }))
        .filter(({ key, lease }) => lease !== '0' && NODE_NAME.test(key.slice(keys.nodes.length)));
      const leases = new Map<string, NodeLease>();
      for (let i = 0; i < held.length; i += LEASE_QUERIES_AT_ONCE) {
        const round = held.slice(i, i + LEASE_QUERIES_AT_ONCE);
        const answers = await Promise.all(
          round.map(({ lease }) =>
            this.ctx.client.leaseClient.leaseTimeToLive({ ID: lease }, { deadline: Date.now() + this.ctx.attemptMs }),
          ),
        );
        round.forEach(({ key }, j) => {
          const answer = answers[j];
          try {
            const lease = leaseFromAnswer(key, answer?.TTL, answer?.grantedTTL);
            if (lease) leases.set(key.slice(keys.nodes.length), lease);
          } catch (err) {
            this.warnInvalid(toStoreError(err, `lease of ${key}`));
          }
        });
      }
      return leases;
    } catch (err) {
      throw toStoreError(err, 'read node leases');
    }
  }

  async watchNodes(listener: WatchListener<NodeView[]>): Promise<Watch> {
    return await watchRecordGroup(this.ctx, listener.onError?.bind(listener), (group) => {
      const nodes = group.add(keys.nodes, decodeNode);
      const drains = group.add(keys.drains, decodeDrainFlag);
      const statuses = group.add(keys.statuses, decodeStatus);
      return () => listener.onUpdate(nodeViews(nodes.snapshot(), drains.snapshot(), statuses.snapshot()));
    });
  }

  async setNodeDrain(name: string, drained: boolean): Promise<void> {
    assertNodeName(name);
    try {
      if (drained)
        await this.ctx.ns
          .put(keys.drain(name))
          .value(JSON.stringify({ drained: true, at: new Date().toISOString() }))
          .exec();
      else await this.ctx.ns.delete().key(keys.drain(name)).exec();
    } catch (err) {
      throw toStoreError(err, `${drained ? 'drain' : 'undrain'} node ${name}`);
    }
  }

  async reportHealth(node: string, members: ReadonlyMap<string, MemberStatus>): Promise<void> {
    const held = this.registrations.get(node);
    // A registration still being created is waited for, as its registerNode is; one that failed is not registered.
    const reg = held?.reg ?? (await held?.created.catch(() => undefined));
    if (!reg) throw new StoreError('NOT_FOUND', `node ${node}: not registered through this store (registerNode first)`);
    await reg.reportHealth(members);
  }

  async listHealthReports(): Promise<HealthReport[]> {
    try {
      return healthReports((await readPrefix(this.ctx.ns, keys.health, decodeHealth, this.warnInvalid)).entries);
    } catch (err) {
      throw toStoreError(err, 'list health reports');
    }
  }

  async watchHealthReports(listener: WatchListener<HealthReport[]>): Promise<Watch> {
    return await watchRecordGroup(this.ctx, listener.onError?.bind(listener), (group) => {
      const health = group.add(keys.health, decodeHealth);
      return () => listener.onUpdate(healthReports(health.snapshot()));
    });
  }

  /** Leases are not revoked: like a crash, they expire after their TTL (close() a registration to leave at once). */
  abandonAll(): void {
    // One still being created is abandoned when its create resolves (registerNode).
    for (const { reg } of this.registrations.values()) reg?.abandon();
    this.registrations.clear();
  }
}
