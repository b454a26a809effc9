/**
 * The aggregator election (etcd3's Election: the campaign key with the lowest create revision leads). Candidate
 * values read back are checked as node names; an election key of the wrong shape is reported and, while it holds
 * the lowest create revision, leaves the leader unknown (undefined) rather than naming a node that does not lead.
 *
 * The campaign's lease is renewed like a node's (lease-keeper.ts: one renewal every TTL/3, each with the attempt
 * deadline, retried on another member), not by etcd3's autoKeepAlive. That one keeps the lease on a single stream
 * with no deadline and declares it lost by the local clock (no answer for 2 x TTL): a follower frozen under the
 * stream cost the leadership though etcd kept the lease (test/etcd-failover.int.test.ts). etcd3 1.1's Campaign takes
 * no lease of its own: it asks its namespace for one (`namespace.lease(ttl)`), so it is handed a namespace whose
 * lease() grants one without autoKeepAlive, and the keeper renews that.
 */
import { Campaign, type Lease, type Namespace } from 'etcd3';
import { StoreError, toStoreError } from './errors.js';
import { AGGREGATOR_ELECTION } from './layout.js';
import { LeaseKeeper } from './lease-keeper.js';
import { PrefixCacheGroup } from './prefix-cache.js';
import { decodeCandidate } from './record-check.js';
import { DEFAULT_LEASE_TTL_S } from './registration.js';
import { assertNodeName, type StoreContext, tracked } from './store-context.js';
import type { CampaignOptions, Leadership, Watch, WatchListener } from './types.js';

/** Election keys, relative to the layout namespace. */
export const ELECTION_PREFIX = `election/${AGGREGATOR_ELECTION}/`;

/** Leadership handle -> full etcd key of its campaign (the fence of writeDecided). */
const leadershipKeys = new WeakMap<Leadership, string>();

/** Leadership handle -> what ends it when a fenced write found its campaign key gone. */
const fenceLosses = new WeakMap<Leadership, (what: string) => void>();

/** The campaign key fencing writes of `leadership`, if it came from this store and is still held. */
export function fenceOf(leadership: Leadership): string | undefined {
  return leadershipKeys.get(leadership);
}

/**
 * A fenced write found the campaign key of `leadership` gone (its lease expired, or it was deleted by hand, e.g.
 * `etcdctl del --prefix .../election/`): the leadership is lost, so isLeader() turns false and `lost` resolves and
 * the owner campaigns again. etcd3's Campaign does not watch its own key: without this, a deleted key left a leader
 * whose every write failed, for ever.
 */
export function fenceFailed(leadership: Leadership, what: string): void {
  fenceLosses.get(leadership)?.(what);
}

/** A candidate decoded, or the reason it was not: kept in the cache so the lowest key still decides the leader. */
type Candidate = { readonly name: string } | { readonly invalid: StoreError };

const decodeCandidateEntry = (k: string, v: Buffer): Candidate => {
  try {
    return { name: decodeCandidate(k, v) };
  } catch (err) {
    return { invalid: toStoreError(err, `decode ${k}`) };
  }
};

export class ElectionStore {
  constructor(private readonly ctx: StoreContext) {}

  async campaign(node: string, options: CampaignOptions = {}): Promise<Leadership> {
    assertNodeName(node);
    const { ns, log } = this.ctx;
    const ttlS = options.leaseTtlS ?? DEFAULT_LEASE_TTL_S;
    // The namespace etcd3's Election campaigns in (`election/<name>/`), with lease() granting without autoKeepAlive.
    const electionNs = ns.namespace(ELECTION_PREFIX);
    let lease: Lease | undefined;
    const candidateNs = Object.create(electionNs, {
      lease: { value: (ttl: number) => (lease = electionNs.lease(ttl, { autoKeepAlive: false })) },
    }) as Namespace;
    const campaign = new Campaign(candidateNs, node, ttlS);
    if (!lease) {
      await campaign.resign().catch(() => undefined);
      throw new StoreError(
        'INTERNAL',
        `campaign of ${node}: etcd3's Campaign did not take its lease from its namespace`,
      );
    }
    const keeper = new LeaseKeeper(lease, {
      ttlS,
      attemptMs: this.ctx.attemptMs,
      onRenewFailed: (err) => log.warn({ event: 'leaseRenewFailed', node, lease: 'election', err: err.message }),
    });
    keeper.start();
    // etcd3 emits 'error' twice when the lease grant fails (lease 'lost', then start()); without a standing
    // listener the second emit throws inside a promise: an unhandled rejection each campaign while etcd is down.
    campaign.on('error', () => undefined);
    let resolveLost: (e: StoreError | undefined) => void = () => undefined;
    const lost = new Promise<StoreError | undefined>((r) => (resolveLost = r));
    let leader = false;
    // Until the leadership is handed over, the store's close() ends the campaign: its lease revoked, the wait refused
    // CLOSED. Else a candidate still waiting renewed its lease on a closed client for ever (its keeper's timer kept
    // the process alive) and its campaign() never settled.
    let closing = false;
    let stopWaiting: (err: StoreError) => void = () => undefined;
    /** The leadership's own closer, once handed over (a close() that listed this closer before runs that one). */
    let handedOver: (() => Promise<void>) | undefined;
    const closeWaiting = async () => {
      if (handedOver) return handedOver();
      closing = true;
      keeper.stop();
      await campaign.resign().catch(() => undefined);
      stopWaiting(new StoreError('CLOSED', `campaign of ${node}: the store was closed`));
    };
    this.ctx.closers.add(closeWaiting);
    let key: string;
    try {
      await new Promise<void>((resolve, reject) => {
        stopWaiting = reject;
        campaign.once('elected', () => resolve());
        campaign.once('error', reject);
      });
      key = await campaign.getCampaignKey();
      if (closing) throw new StoreError('CLOSED', `campaign of ${node}: the store was closed`);
    } catch (err) {
      this.ctx.closers.delete(closeWaiting);
      keeper.stop();
      await campaign.resign().catch(() => undefined);
      throw toStoreError(err, `campaign of ${node}`);
    }
    leader = true;
    const resign = async () => {
      if (!leader) return;
      leader = false;
      keeper.stop();
      await campaign.resign().catch(() => undefined);
      resolveLost(undefined);
      log.info({ event: 'leadershipResigned', node });
    };
    const handle = tracked(this.ctx, resign);
    handedOver = handle.close;
    this.ctx.closers.delete(closeWaiting);
    /**
     * The leadership ended without resign(): its closer leaves the store too. The owner awaits `lost` and campaigns
     * again without resigning (the aggregator), so a closer kept here held the Campaign, its Lease and the keeper for
     * the life of the process, one more per loss.
     */
    const lose = (err: StoreError) => {
      leader = false;
      keeper.stop();
      this.ctx.closers.delete(handle.close);
      resolveLost(err);
    };
    campaign.on('error', (err) => {
      keeper.stop();
      if (!leader) return;
      log.warn({ event: 'leadershipLost', node, err: err.message });
      lose(new StoreError('LEASE_LOST', `leadership of ${node} lost: ${err.message}`, { cause: err }));
    });
    const leadership: Leadership = { node, lost, isLeader: () => leader, resign: handle.close };
    leadershipKeys.set(leadership, key);
    fenceLosses.set(leadership, (what) => {
      if (!leader) return;
      const msg = `leadership of ${node} lost: ${what} found its election key ${key} gone (lease expired, or deleted outside l4fleet)`;
      log.warn({ event: 'leadershipLost', node, key, err: msg });
      // Resigning revokes the campaign's lease (its key is gone already): nothing of this campaign stays behind.
      campaign.resign().catch(() => undefined);
      lose(new StoreError('LEASE_LOST', msg));
    });
    log.info({ event: 'leadershipAcquired', node });
    return leadership;
  }

  async getLeader(): Promise<string | undefined> {
    let kv: { key: Buffer; value: Buffer } | undefined;
    try {
      // etcd3 Election: the leader is the campaign key with the lowest create revision.
      const res = await this.ctx.ns.getAll().prefix(ELECTION_PREFIX).sort('Create', 'Ascend').limit(1).exec();
      kv = res.kvs[0];
    } catch (err) {
      throw toStoreError(err, 'read leader');
    }
    return kv ? decodeCandidate(kv.key.toString(), kv.value) : undefined;
  }

  async observeLeader(listener: WatchListener<string | undefined>): Promise<Watch> {
    let last: string | undefined | null = null;
    const group = new PrefixCacheGroup(this.ctx.ns, (err) => listener.onError?.(err), this.ctx.log);
    const candidates = group.add(ELECTION_PREFIX, decodeCandidateEntry);
    const reported = new WeakSet<StoreError>();
    await group.start(() => {
      // etcd3 Election: the leader is the campaign key with the lowest create revision.
      let best: { createRevision: number; value: Candidate } | undefined;
      for (const kv of candidates.snapshot().values()) {
        if (!best || kv.createRevision < best.createRevision) best = kv;
      }
      let leader: string | undefined;
      if (best && 'name' in best.value) leader = best.value.name;
      else if (best && 'invalid' in best.value && !reported.has(best.value.invalid)) {
        reported.add(best.value.invalid);
        listener.onError?.(best.value.invalid);
      }
      if (leader !== last) {
        last = leader;
        listener.onUpdate(leader);
      }
    });
    return tracked(this.ctx, () => group.close());
  }
}
