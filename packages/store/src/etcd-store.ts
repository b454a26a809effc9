/**
 * FleetStore on etcd (the etcd3 client). Key layout: layout.ts and docs/design/0002-etcd-layout.md.
 * apply() writes the document's chunks under a new generation, then switches the pointer in ONE txn guarded by
 * the pointer's mod revision; the same txn deletes every other generation. Readers read the pointer and the
 * chunks at the same revision, so they see the old or the new fleet, never a mix.
 */
import { randomBytes } from 'node:crypto';
import type { Fleet, MemberStatus } from '@l4fleet/config';
import { ExponentialBackoff, type IBackoff, noop } from 'cockatiel';
import { type Campaign, Etcd3, type IOptions, type Namespace, Range } from 'etcd3';
import type { Logger } from 'pino';
import { decodeDocument, decodeJson, decodePointer, encodeDocument, newGenerationId, type Pointer } from './codec.js';
import { StoreError, toStoreError } from './errors.js';
import {
  AGGREGATOR_ELECTION,
  DEFAULT_PREFIX,
  keys,
  layoutNamespace,
  MAX_TXN_BYTES,
  MAX_TXN_OPS,
  NODE_NAME,
} from './layout.js';
import { type CachedKv, PrefixCache } from './prefix-cache.js';
import { checkPoolStatus, encodePoolStatus, groupByPool, type PoolStatusRecord } from './records.js';
import { DEFAULT_LEASE_TTL_S, EtcdNodeRegistration } from './registration.js';
import type {
  ApplyOptions,
  ApplyResult,
  CampaignOptions,
  DecidedState,
  DesiredState,
  FleetStore,
  HealthReport,
  Leadership,
  NodeInfo,
  NodeRecord,
  NodeRegistration,
  NodeRegistrationOptions,
  NodeStatusReport,
  NodeView,
  Watch,
  WatchListener,
} from './types.js';
import { ResumableWatch } from './watch.js';

export interface EtcdStoreOptions {
  /** etcd client URLs, e.g. ['http://127.0.0.1:2379']; https:// with `tls`. */
  readonly endpoints: readonly string[];
  /** PEM CA to verify etcd, and the client certificate and key when etcd requires them (--client-cert-auth). */
  readonly tls?: { readonly ca?: Buffer; readonly cert?: Buffer; readonly key?: Buffer };
  /** etcd user/password auth. */
  readonly auth?: { readonly username: string; readonly password: string };
  /** Key prefix; default `/l4fleet`. */
  readonly prefix?: string;
  /** Time to connect before a call fails, in ms; default 3,000. */
  readonly dialTimeoutMs?: number;
  /** Deadline of each unary call, in ms; default 10,000 (streams have none). */
  readonly callTimeoutMs?: number;
  readonly logger: Logger;
}

export const DEFAULT_DIAL_TIMEOUT_MS = 3_000;
export const DEFAULT_CALL_TIMEOUT_MS = 10_000;
/** gRPC's 4 MiB default receive limit is below a large generation read; etcd sends up to its own limits. */
const MAX_RECEIVE_BYTES = 64 * 1024 * 1024;
const CHUNK_WRITE_CONCURRENCY = 4;

export const EMPTY_FLEET: Fleet = Object.freeze({ pools: [], vips: [] });

function randomSeed(): number {
  return randomBytes(4).readUInt32BE(0);
}

function assertNodeName(name: string): void {
  if (!NODE_NAME.test(name)) {
    throw new StoreError(
      'INVALID_STATE',
      `node: ${JSON.stringify(name)} is not a node name (1-63 of A-Z a-z 0-9 . _ -)`,
    );
  }
}

/** The key right after every key with this prefix (etcd range end for a prefix). */
function prefixEnd(prefix: string): string {
  return prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
}

interface ReadPointer {
  readonly pointer: Pointer | undefined;
  readonly modRevision: number;
  readonly headerRevision: number;
  readonly invalid: StoreError | undefined;
}

export class EtcdFleetStore implements FleetStore {
  readonly client: Etcd3;
  /** Namespace of layout v1: `${prefix}/v1/`. */
  readonly ns: Namespace;
  private readonly log: Logger;
  private readonly registrations = new Map<string, EtcdNodeRegistration>();
  private readonly closers = new Set<() => Promise<void>>();

  constructor(options: EtcdStoreOptions) {
    this.log = options.logger.child({ component: 'store' });
    const callTimeoutMs = options.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
    const etcdOptions: IOptions = {
      hosts: [...options.endpoints],
      dialTimeout: options.dialTimeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS,
      grpcOptions: { 'grpc.max_receive_message_length': MAX_RECEIVE_BYTES },
      // Streams (watch, lease keepalive) live for the process; only unary calls get a deadline.
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + callTimeoutMs }),
      // Callers decide about retries (a failed apply must be reported, watches resume by themselves); the default
      // circuit breaker would refuse calls for seconds after an etcd restart.
      faultHandling: {
        host: () => noop,
        global: noop,
        // etcd3 calls .next() on this itself (its typing says IBackoff, its code wants the factory).
        watchBackoff: new ExponentialBackoff({ initialDelay: 100, maxDelay: 2_000 }) as unknown as IBackoff<unknown>,
      },
    };
    if (options.tls) {
      etcdOptions.credentials = {
        rootCertificate: options.tls.ca ?? Buffer.alloc(0),
        ...(options.tls.cert ? { certChain: options.tls.cert } : {}),
        ...(options.tls.key ? { privateKey: options.tls.key } : {}),
      };
    }
    if (options.auth) etcdOptions.auth = { username: options.auth.username, password: options.auth.password };
    this.client = new Etcd3(etcdOptions);
    this.ns = this.client.namespace(layoutNamespace(options.prefix ?? DEFAULT_PREFIX));
  }

  // ---- desired state ----

  private async readPointer(revision?: number): Promise<ReadPointer> {
    const b = this.ns.get(keys.pointer);
    if (revision !== undefined) b.revision(revision);
    const res = await b.exec();
    const kv = res.kvs[0];
    const headerRevision = Number(res.header.revision);
    if (!kv) return { pointer: undefined, modRevision: 0, headerRevision, invalid: undefined };
    try {
      return {
        pointer: decodePointer(keys.pointer, kv.value),
        modRevision: Number(kv.mod_revision),
        headerRevision,
        invalid: undefined,
      };
    } catch (err) {
      return {
        pointer: undefined,
        modRevision: Number(kv.mod_revision),
        headerRevision,
        invalid: toStoreError(err, 'read'),
      };
    }
  }

  /** Reads the generation the pointer names, at the revision the pointer was read at. */
  private async readFleet(p: Pointer, atRevision: number): Promise<Fleet> {
    const chunks = await Promise.all(
      Array.from({ length: p.chunks }, async (_, i) => {
        const res = await this.ns.get(keys.chunk(p.generation, i)).revision(atRevision).exec();
        return res.kvs[0]?.value;
      }),
    );
    const present = chunks.filter((c): c is Buffer => c !== undefined);
    return decodeDocument(keys.pointer, p, present);
  }

  private async readDesired(): Promise<DesiredState & { headerRevision: number }> {
    const cur = await this.readPointer();
    if (cur.invalid) throw cur.invalid;
    if (!cur.pointer) return { fleet: EMPTY_FLEET, revision: 0, generation: '', headerRevision: cur.headerRevision };
    const fleet = await this.readFleet(cur.pointer, cur.headerRevision);
    return { fleet, revision: cur.modRevision, generation: cur.pointer.generation, headerRevision: cur.headerRevision };
  }

  async getDesired(): Promise<DesiredState> {
    try {
      const { headerRevision: _h, ...state } = await this.readDesired();
      return state;
    } catch (err) {
      throw toStoreError(err, 'read desired state');
    }
  }

  async apply(fleet: Fleet, options: ApplyOptions = {}): Promise<ApplyResult> {
    let cur: ReadPointer;
    try {
      cur = await this.readPointer();
    } catch (err) {
      throw toStoreError(err, 'apply (read)');
    }
    const expect = options.expectRevision ?? cur.modRevision;
    const conflict = () =>
      new StoreError(
        'CONFLICT',
        `apply: the desired state changed since revision ${expect} (now ${cur.modRevision}); re-read and retry`,
      );
    if (cur.modRevision !== expect) throw conflict();
    const hashSeed = fleet.hashSeed ?? cur.pointer?.hashSeed ?? randomSeed();
    const generation = newGenerationId();
    const doc = encodeDocument({ ...fleet, hashSeed }, generation, new Date());
    try {
      for (let i = 0; i < doc.chunks.length; i += CHUNK_WRITE_CONCURRENCY) {
        await Promise.all(
          doc.chunks.slice(i, i + CHUNK_WRITE_CONCURRENCY).map((c, j) =>
            this.ns
              .put(keys.chunk(generation, i + j))
              .value(c)
              .exec(),
          ),
        );
      }
      const gen = keys.generation(generation);
      const res = await this.ns
        .if(keys.pointer, 'Mod', '==', expect)
        .then(
          this.ns.put(keys.pointer).value(JSON.stringify(doc.pointer)),
          // Garbage-collect every other generation: old ones, and orphans of applies that crashed or lost a race
          // (a racing apply's own flip is guarded by the revision this txn changes, so it fails anyway).
          this.ns.delete().range(new Range(keys.generations, gen)),
          this.ns.delete().range(new Range(prefixEnd(gen), prefixEnd(keys.generations))),
        )
        .commit();
      if (!res.succeeded) {
        await this.ns
          .delete()
          .prefix(gen)
          .exec()
          .catch(() => undefined);
        throw conflict();
      }
      const revision = Number(res.header.revision);
      this.log.info({
        event: 'desiredApplied',
        revision,
        generation,
        bytes: doc.pointer.bytes,
        chunks: doc.chunks.length,
      });
      return { revision, generation, hashSeed, bytes: doc.pointer.bytes, chunks: doc.chunks.length };
    } catch (err) {
      throw toStoreError(err, 'apply');
    }
  }

  async watchDesired(listener: WatchListener<DesiredState>): Promise<Watch> {
    const onError = (err: StoreError) => {
      this.log.warn({ event: 'desiredWatchError', code: err.code, err: err.message });
      listener.onError?.(err);
    };
    let lastDelivered = -1;
    const deliver = (s: DesiredState) => {
      if (s.revision === lastDelivered) return;
      lastDelivered = s.revision;
      listener.onUpdate(s);
    };
    // Full read: delivers the current state (if valid) and returns the revision to watch after.
    const resync = async (): Promise<number> => {
      const cur = await this.readPointer();
      if (cur.invalid) onError(cur.invalid);
      else if (!cur.pointer) deliver({ fleet: EMPTY_FLEET, revision: 0, generation: '' });
      else {
        try {
          const fleet = await this.readFleet(cur.pointer, cur.headerRevision);
          deliver({ fleet, revision: cur.modRevision, generation: cur.pointer.generation });
        } catch (err) {
          const e = toStoreError(err, 'read desired state');
          if (e.code !== 'INVALID_STATE') throw e;
          onError(e);
        }
      }
      return cur.headerRevision;
    };
    let closed = false;
    const after = await resync().catch((err) => {
      throw toStoreError(err, 'watch desired state');
    });
    const watch = new ResumableWatch(
      this.ns,
      { key: keys.pointer },
      after,
      {
        onEvents: async (events) => {
          for (const ev of events) {
            if (ev.type === 'delete') {
              onError(
                new StoreError(
                  'INVALID_STATE',
                  `${keys.pointer}: deleted outside l4fleet; keeping the last good fleet`,
                ),
              );
              continue;
            }
            let pointer: Pointer;
            try {
              pointer = decodePointer(keys.pointer, ev.value);
            } catch (err) {
              onError(toStoreError(err, 'watch desired state'));
              continue;
            }
            // Read the generation as of this event's revision; retry while etcd is unreachable, re-read all if
            // that revision was compacted meanwhile.
            for (let attempt = 0; !closed; attempt++) {
              try {
                const fleet = await this.readFleet(pointer, ev.modRevision);
                deliver({ fleet, revision: ev.modRevision, generation: pointer.generation });
                break;
              } catch (err) {
                const e = toStoreError(err, 'read desired generation');
                if (e.code === 'INVALID_STATE') {
                  onError(e);
                  break;
                }
                if (e.code === 'COMPACTED') {
                  await resync();
                  break;
                }
                onError(e);
                await new Promise((r) => setTimeout(r, Math.min(2_000, 100 * 2 ** attempt)));
              }
            }
          }
        },
        resync,
        onError,
      },
      this.log,
    );
    watch.start();
    const close = async () => {
      closed = true;
      this.closers.delete(close);
      await watch.close();
    };
    this.closers.add(close);
    return { close };
  }

  // ---- nodes, health, status ----

  async registerNode(info: NodeInfo, options: NodeRegistrationOptions = {}): Promise<NodeRegistration> {
    assertNodeName(info.name);
    const existing = this.registrations.get(info.name);
    if (existing) return existing;
    const reg = await EtcdNodeRegistration.create(this.ns, info, options, this.log);
    this.registrations.set(info.name, reg);
    const close = reg.close.bind(reg);
    return Object.assign(reg, {
      close: async () => {
        this.registrations.delete(info.name);
        await close();
      },
    });
  }

  private static nodeViews(
    nodes: ReadonlyMap<string, CachedKv<NodeRecord>>,
    drains: ReadonlyMap<string, CachedKv<object>>,
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

  private async readPrefix<T>(
    prefix: string,
    decode: (key: string, v: Buffer) => T,
  ): Promise<Map<string, CachedKv<T>>> {
    const res = await this.ns.getAll().prefix(prefix).exec();
    const out = new Map<string, CachedKv<T>>();
    for (const kv of res.kvs) {
      const key = kv.key.toString();
      try {
        out.set(key, {
          value: decode(key, kv.value),
          createRevision: Number(kv.create_revision),
          modRevision: Number(kv.mod_revision),
        });
      } catch (err) {
        this.log.warn({ event: 'invalidRecord', key, err: (err as Error).message });
      }
    }
    return out;
  }

  async listNodes(): Promise<NodeView[]> {
    try {
      const [nodes, drains, statuses] = await Promise.all([
        this.readPrefix(keys.nodes, (k, v) => decodeJson<NodeRecord>(k, v)),
        this.readPrefix(keys.drains, (k, v) => decodeJson<object>(k, v)),
        this.readPrefix(keys.statuses, (k, v) => decodeJson<NodeStatusReport>(k, v)),
      ]);
      return EtcdFleetStore.nodeViews(nodes, drains, statuses);
    } catch (err) {
      throw toStoreError(err, 'list nodes');
    }
  }

  /** Starts prefix caches and returns a Watch closing all of them. */
  private async watchCaches(
    specs: { prefix: string; decode: (k: string, v: Buffer) => unknown }[],
    emit: (snapshots: ReadonlyMap<string, CachedKv<unknown>>[], revision: number) => void,
    onError: ((err: StoreError) => void) | undefined,
  ): Promise<Watch> {
    const snapshots: ReadonlyMap<string, CachedKv<unknown>>[] = specs.map(() => new Map());
    let started = false;
    let revision = 0;
    const caches = specs.map(
      (spec, i) =>
        new PrefixCache(
          this.ns,
          spec.prefix,
          {
            decode: spec.decode,
            onChange: (snap, rev) => {
              snapshots[i] = snap;
              revision = Math.max(revision, rev);
              if (started) emit(snapshots, revision);
            },
            onError: (err) => onError?.(err),
          },
          this.log,
        ),
    );
    try {
      for (const c of caches) await c.start();
    } catch (err) {
      await Promise.all(caches.map((c) => c.close()));
      throw toStoreError(err, 'watch');
    }
    started = true;
    emit(snapshots, revision);
    const close = async () => {
      this.closers.delete(close);
      await Promise.all(caches.map((c) => c.close()));
    };
    this.closers.add(close);
    return { close };
  }

  async watchNodes(listener: WatchListener<NodeView[]>): Promise<Watch> {
    return await this.watchCaches(
      [
        { prefix: keys.nodes, decode: (k, v) => decodeJson<NodeRecord>(k, v) },
        { prefix: keys.drains, decode: (k, v) => decodeJson<object>(k, v) },
        { prefix: keys.statuses, decode: (k, v) => decodeJson<NodeStatusReport>(k, v) },
      ],
      ([n, d, s]) =>
        listener.onUpdate(
          EtcdFleetStore.nodeViews(
            n as ReadonlyMap<string, CachedKv<NodeRecord>>,
            d as ReadonlyMap<string, CachedKv<object>>,
            s as ReadonlyMap<string, CachedKv<NodeStatusReport>>,
          ),
        ),
      listener.onError?.bind(listener),
    );
  }

  async setNodeDrain(name: string, drained: boolean): Promise<void> {
    assertNodeName(name);
    try {
      if (drained)
        await this.ns
          .put(keys.drain(name))
          .value(JSON.stringify({ drained: true, at: new Date().toISOString() }))
          .exec();
      else await this.ns.delete().key(keys.drain(name)).exec();
    } catch (err) {
      throw toStoreError(err, `${drained ? 'drain' : 'undrain'} node ${name}`);
    }
  }

  async reportHealth(node: string, members: ReadonlyMap<string, MemberStatus>): Promise<void> {
    const reg = this.registrations.get(node);
    if (!reg) throw new StoreError('NOT_FOUND', `node ${node}: not registered through this store (registerNode first)`);
    await reg.reportHealth(members);
  }

  private static healthReports(snap: ReadonlyMap<string, CachedKv<PoolStatusRecord>>): HealthReport[] {
    const byNode = new Map<string, Map<string, MemberStatus>>();
    for (const [key, { value }] of snap) {
      const node = key.slice(keys.health.length, key.lastIndexOf('/'));
      let m = byNode.get(node);
      if (!m) byNode.set(node, (m = new Map()));
      for (const [member, s] of Object.entries(value.members)) m.set(`${value.pool}/${member}`, s);
    }
    return [...byNode.keys()].sort().map((node) => ({ node, members: byNode.get(node) as Map<string, MemberStatus> }));
  }

  private readonly decodePoolStatus = (k: string, v: Buffer) => checkPoolStatus(k, decodeJson<PoolStatusRecord>(k, v));

  async listHealthReports(): Promise<HealthReport[]> {
    try {
      return EtcdFleetStore.healthReports(await this.readPrefix(keys.health, this.decodePoolStatus));
    } catch (err) {
      throw toStoreError(err, 'list health reports');
    }
  }

  async watchHealthReports(listener: WatchListener<HealthReport[]>): Promise<Watch> {
    return await this.watchCaches(
      [{ prefix: keys.health, decode: this.decodePoolStatus }],
      ([s]) => listener.onUpdate(EtcdFleetStore.healthReports(s as ReadonlyMap<string, CachedKv<PoolStatusRecord>>)),
      listener.onError?.bind(listener),
    );
  }

  // ---- decided status and the aggregator election ----

  private static decidedMap(snap: ReadonlyMap<string, CachedKv<PoolStatusRecord>>): Map<string, MemberStatus> {
    const out = new Map<string, MemberStatus>();
    for (const { value } of snap.values()) {
      for (const [member, s] of Object.entries(value.members)) out.set(`${value.pool}/${member}`, s);
    }
    return out;
  }

  async getDecided(): Promise<DecidedState> {
    try {
      const res = await this.ns.getAll().prefix(keys.decided).exec();
      const snap = new Map<string, CachedKv<PoolStatusRecord>>();
      for (const kv of res.kvs) {
        const key = kv.key.toString();
        try {
          snap.set(key, { value: this.decodePoolStatus(key, kv.value), createRevision: 0, modRevision: 0 });
        } catch (err) {
          this.log.warn({ event: 'invalidRecord', key, err: (err as Error).message });
        }
      }
      return { decided: EtcdFleetStore.decidedMap(snap), revision: Number(res.header.revision) };
    } catch (err) {
      throw toStoreError(err, 'read decided status');
    }
  }

  async watchDecided(listener: WatchListener<DecidedState>): Promise<Watch> {
    return await this.watchCaches(
      [{ prefix: keys.decided, decode: this.decodePoolStatus }],
      ([s], revision) =>
        listener.onUpdate({
          decided: EtcdFleetStore.decidedMap(s as ReadonlyMap<string, CachedKv<PoolStatusRecord>>),
          revision,
        }),
      listener.onError?.bind(listener),
    );
  }

  async writeDecided(
    decided: ReadonlyMap<string, MemberStatus>,
    options: { leadership?: Leadership } = {},
  ): Promise<void> {
    const fence = options.leadership ? leadershipKeys.get(options.leadership) : undefined;
    if (options.leadership && (!fence || !options.leadership.isLeader())) {
      throw new StoreError('LEASE_LOST', `write decided: ${options.leadership.node} is not the leader`);
    }
    try {
      const current = await this.ns.getAll().prefix(keys.decided).exec();
      const stored = new Map(current.kvs.map((kv) => [kv.key.toString(), kv.value.toString()]));
      const puts: { key: string; value: string }[] = [];
      for (const [pool, rec] of groupByPool(decided)) {
        const value = encodePoolStatus(pool, rec);
        if (stored.get(keys.decidedPool(pool)) !== value) puts.push({ key: keys.decidedPool(pool), value });
      }
      let i = 0;
      while (i < puts.length) {
        const batch: typeof puts = [];
        let bytes = 0;
        while (
          i < puts.length &&
          batch.length < MAX_TXN_OPS &&
          bytes + (puts[i] as { value: string }).value.length < MAX_TXN_BYTES
        ) {
          bytes += (puts[i] as { value: string }).value.length;
          batch.push(puts[i++] as { key: string; value: string });
        }
        if (batch.length === 0) batch.push(puts[i++] as { key: string; value: string });
        // Fencing: the txn applies only while the leader's election key exists (its lease is alive).
        const txn = fence
          ? this.client.if(fence, 'Create', '>', 0)
          : this.ns.if(keys.decidedPool('_'), 'Create', '>', -1);
        const res = await txn.then(...batch.map((p) => this.ns.put(p.key).value(p.value))).commit();
        if (!res.succeeded)
          throw new StoreError('LEASE_LOST', `write decided: ${options.leadership?.node} lost leadership`);
      }
    } catch (err) {
      throw toStoreError(err, 'write decided status');
    }
  }

  async campaign(node: string, options: CampaignOptions = {}): Promise<Leadership> {
    assertNodeName(node);
    const election = this.ns.election(AGGREGATOR_ELECTION, options.leaseTtlS ?? DEFAULT_LEASE_TTL_S);
    const campaign: Campaign = election.campaign(node);
    // etcd3 emits 'error' twice when the lease grant fails (lease 'lost', then start()); without a standing
    // listener the second emit throws inside a promise: an unhandled rejection each campaign while etcd is down.
    campaign.on('error', () => undefined);
    let resolveLost: (e: StoreError | undefined) => void = () => undefined;
    const lost = new Promise<StoreError | undefined>((r) => (resolveLost = r));
    let leader = false;
    try {
      await new Promise<void>((resolve, reject) => {
        campaign.once('elected', () => resolve());
        campaign.once('error', reject);
      });
    } catch (err) {
      await campaign.resign().catch(() => undefined);
      throw toStoreError(err, `campaign of ${node}`);
    }
    leader = true;
    const key = await campaign.getCampaignKey();
    campaign.on('error', (err) => {
      if (!leader) return;
      leader = false;
      this.log.warn({ event: 'leadershipLost', node, err: err.message });
      resolveLost(new StoreError('LEASE_LOST', `leadership of ${node} lost: ${err.message}`, { cause: err }));
    });
    const leadership: Leadership = {
      node,
      lost,
      isLeader: () => leader,
      resign: async () => {
        if (!leader) return;
        leader = false;
        this.closers.delete(leadership.resign);
        await campaign.resign().catch(() => undefined);
        resolveLost(undefined);
        this.log.info({ event: 'leadershipResigned', node });
      },
    };
    leadershipKeys.set(leadership, key);
    this.closers.add(leadership.resign);
    this.log.info({ event: 'leadershipAcquired', node });
    return leadership;
  }

  async getLeader(): Promise<string | undefined> {
    try {
      return await this.ns.election(AGGREGATOR_ELECTION).leader();
    } catch (err) {
      throw toStoreError(err, 'read leader');
    }
  }

  async observeLeader(listener: WatchListener<string | undefined>): Promise<Watch> {
    let last: string | undefined | null = null;
    return await this.watchCaches(
      [{ prefix: `election/${AGGREGATOR_ELECTION}/`, decode: (_k, v) => v.toString() }],
      ([s]) => {
        // etcd3 Election: the leader is the campaign key with the lowest create revision.
        let best: CachedKv<unknown> | undefined;
        for (const kv of (s as ReadonlyMap<string, CachedKv<unknown>>).values()) {
          if (!best || kv.createRevision < best.createRevision) best = kv;
        }
        const leader = best?.value as string | undefined;
        if (leader !== last) {
          last = leader;
          listener.onUpdate(leader);
        }
      },
      listener.onError?.bind(listener),
    );
  }

  async close(): Promise<void> {
    for (const close of [...this.closers]) await close().catch(() => undefined);
    this.closers.clear();
    // Leases are not revoked: like a crash, they expire after their TTL (close() a registration to leave at once).
    for (const reg of this.registrations.values()) reg.abandon();
    this.registrations.clear();
    this.client.close();
  }
}

/** Leadership handle -> full etcd key of its campaign (the fence of writeDecided). */
const leadershipKeys = new WeakMap<Leadership, string>();
