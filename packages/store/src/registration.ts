/**
 * A node's registration: one lease carries the node record, its health reports and its status record, so all of
 * them vanish when the agent dies (etcd lease expiry). If the lease is lost while the agent lives (etcd down longer
 * than the TTL), the registration grants a new lease and re-writes everything it last published. The lease is
 * renewed by lease-keeper.ts (each renewal with a deadline), not by etcd3's one long stream. A node record another
 * agent holds is not written over (node-claim.ts): the registration is refused. Found held by another address later
 * (a re-registration refused, or at a renewal), the name is taken: onNameTaken, and no more attempts or reports.
 * A record gone while the lease lives is written again with the reports (restoreRecord). The txns that write it all
 * are registration-write.ts.
 */
import type { MemberStatus } from '@l4fleet/config';
import type { Lease, Namespace } from 'etcd3';
import type { Logger } from 'pino';
import { StoreError, toStoreError } from './errors.js';
import { keys } from './layout.js';
import { LeaseKeeper } from './lease-keeper.js';
import { claimRefusal, holderAddress } from './node-claim.js';
import { encodePoolStatus, groupByPool } from './records.js';
import { type Op, writeRegistration } from './registration-write.js';
import type { NodeInfo, NodeRecord, NodeRegistration, NodeRegistrationOptions, NodeStatusReport } from './types.js';

export const DEFAULT_LEASE_TTL_S = 10;
/**
 * Re-registration after a lost lease is tried again after REREGISTER_RETRY_MS, doubling up to
 * REREGISTER_RETRY_MAX_MS (0.5, 1, 2, 4, 5, 5 ... s) while etcd fails it (not when another address holds the name:
 * that ends it, nameTaken), and at once again after the next loss
 * once it went through. Every 500 ms made a long outage 121 failed grants and warnings a minute per node; 5 s keeps
 * the node's return within a few seconds of etcd's.
 */
export const REREGISTER_RETRY_MS = 500;
export const REREGISTER_RETRY_MAX_MS = 5_000;

/**
 * How many attempts (attemptMs each) close() waits for a re-registration in flight: its grant, the txn it may have
 * under way when it sees `closed`, and the revoke of its lease (grantAndWrite).
 */
const CLOSE_WAIT_ATTEMPTS = 3;

export class EtcdNodeRegistration implements NodeRegistration {
  private lease: Lease | undefined;
  private keeper: LeaseKeeper | undefined;
  private leaseId = '';
  private closed = false;
  /** Closed by abandon(): leases are left to expire, never revoked. */
  private abandoned = false;
  /** What this node last published, re-written on a new lease. */
  private readonly health = new Map<string, string>();
  private status: string | undefined;
  private readonly record: string;
  private readonly ttlS: number;
  private queue: Promise<unknown> = Promise.resolve();
  /** A restoreRecord() is under way. */
  private restoring = false;
  /** Counts the changes of `health` and `status`: a restore that raced a report writes them again. */
  private published = 0;
  /** claim()'s last refusal: a re-registration refused so ends (nameTaken); other failures are retried. */
  private refusal: StoreError | undefined;
  /** The refusal once another address holds the name (nameTaken): reports are refused with it from then on. */
  private taken: StoreError | undefined;
  /** The pause before the next re-registration attempt: close() and abandon() end it at once. */
  private retryWait: { timer: NodeJS.Timeout; end: () => void } | undefined;

  private constructor(
    private readonly ns: Namespace,
    readonly info: NodeInfo,
    private readonly options: NodeRegistrationOptions,
    private readonly log: Logger,
    /** Deadline of one lease renewal, in ms. */
    private readonly attemptMs: number,
  ) {
    this.ttlS = options.leaseTtlS ?? DEFAULT_LEASE_TTL_S;
    this.record = JSON.stringify({ ...info, registeredAt: new Date().toISOString() } satisfies NodeRecord);
  }

  get name(): string {
    return this.info.name;
  }

  static async create(
    ns: Namespace,
    info: NodeInfo,
    options: NodeRegistrationOptions,
    log: Logger,
    attemptMs: number,
  ): Promise<EtcdNodeRegistration> {
    const reg = new EtcdNodeRegistration(ns, info, options, log, attemptMs);
    await reg.grantAndWrite();
    return reg;
  }

  /**
   * Grants a lease and writes everything this node publishes on it. The claim is read first: a name another agent
   * holds is refused with one read, not a grant and a revoke each attempt. `closed` is looked at right after the
   * grant and between the txns: a close() meanwhile revokes the new lease before (more) is written, so the grant, at
   * most one txn and the revoke fit close()'s bound (CLOSE_WAIT_ATTEMPTS); writing everything first made the revoke
   * land after close() had resolved and the caller had closed the etcd client, the lease and records then staying
   * for the TTL.
   */
  private async grantAndWrite(): Promise<void> {
    let claimedAt: string;
    try {
      claimedAt = await this.claim();
    } catch (err) {
      throw toStoreError(err, `register node ${this.name}`);
    }
    if (this.closed) throw new StoreError('CLOSED', `node ${this.name}: registration closed`);
    const lease = this.ns.lease(this.ttlS, { autoKeepAlive: false });
    const closedMeanwhile = async (): Promise<never> => {
      // close() or abandon() ran while this grant was in flight: keeping the lease would keep a closed node
      // registered (renewed until the process exits). A close revokes it; an abandon lets it expire, as it would have.
      lease.release();
      if (!this.abandoned) await lease.revoke().catch(() => undefined);
      throw new StoreError('CLOSED', `node ${this.name}: registration closed`);
    };
    try {
      this.leaseId = await lease.grant();
    } catch (err) {
      lease.release();
      await lease.revoke().catch(() => undefined);
      throw toStoreError(err, `register node ${this.name}`);
    }
    if (this.closed) await closedMeanwhile();
    try {
      await this.publish(() => this.closed, claimedAt);
    } catch (err) {
      if (err instanceof StoreError && err.code === 'CLOSED') await closedMeanwhile();
      lease.release();
      await lease.revoke().catch(() => undefined);
      throw toStoreError(err, `register node ${this.name}`);
    }
    if (this.closed) await closedMeanwhile();
    this.lease = lease;
    lease.on('lost', (err) => this.onLost(lease, err));
    const leaseId = this.leaseId;
    this.keeper = new LeaseKeeper(lease, {
      ttlS: this.ttlS,
      attemptMs: this.attemptMs,
      onRenewFailed: (err) =>
        this.log.warn({ event: 'leaseRenewFailed', node: this.name, lease: leaseId, err: err.message }),
      onRenewed: () => void this.restoreRecord(lease),
    });
    this.keeper.start();
    this.log.info({ event: 'nodeRegistered', node: this.name, lease: this.leaseId, ttlS: this.ttlS });
  }

  /**
   * Writes everything this node publishes (its record, each pool's health, its status) on the current lease, the
   * first txn (the one holding the record) fenced on the record's mod revision `fence` ('0': absent). A pool's report
   * too large to write must not keep the node registered without the others: it is left out (and logged).
   */
  private async publish(stop: () => boolean, fence: string): Promise<void> {
    const ops: Op[] = [{ key: keys.node(this.name), value: this.record }];
    for (const [pool, v] of this.health) ops.push({ key: keys.healthPool(this.name, pool), value: v });
    if (this.status !== undefined) ops.push({ key: keys.status(this.name), value: this.status });
    for (const err of await this.write(ops, stop, fence)) {
      this.log.warn({ event: 'healthReportTooLarge', node: this.name, key: err.key, err: err.message });
      for (const [pool] of this.health) if (keys.healthPool(this.name, pool) === err.key) this.health.delete(pool);
    }
  }

  /**
   * Reads the node's record and says whether this agent may take it (node-claim.ts): a CONFLICT naming the holder
   * when another agent's live lease holds it (create() fails; a re-registration ends: nameTaken).
   * Returns the record's mod revision (0: absent), which the write of the record is fenced on.
   */
  private async claim(): Promise<string> {
    const key = keys.node(this.name);
    const kv = (await this.ns.get(key).exec()).kvs[0];
    if (!kv) return '0';
    const lease = String(kv.lease ?? '0');
    if (lease !== '0' && lease !== this.leaseId) {
      const refusal = claimRefusal(this.name, key, this.info.address, {
        address: holderAddress(kv.value.toString()),
        lease,
      });
      if (refusal) throw (this.refusal = refusal);
    }
    return String(kv.mod_revision);
  }

  /**
   * Writes the node's record again when it is gone while the lease lives (deleted by hand, or by the lease of a
   * successor at the same address that stopped first): else the agent ran on unregistered, gone from `get nodes` and
   * from the aggregator's live nodes. Looked at after each renewal; only an absent record is written (fenced on
   * that: one another agent put is left). The health reports and status go back with it, as on a new lease: the
   * successor's revoke took those too, and reportHealth writes only pools whose view changed, so the node counted
   * live while reporting nothing (a backend it saw dead never decided down). A report written while this ran may
   * have landed before it: then the current reports are written once more. A failure is left to the next renewal.
   */
  private async restoreRecord(lease: Lease): Promise<void> {
    if (this.restoring || this.closed || this.lease !== lease) return;
    this.restoring = true;
    const stop = () => this.closed || this.lease !== lease;
    try {
      const kv = (await this.ns.get(keys.node(this.name)).exec()).kvs[0];
      if (kv) {
        // Same address (a successor of this node) or no lease (hand-written): left. Another address: taken.
        const lease = String(kv.lease ?? '0');
        const holder = { address: holderAddress(kv.value.toString()), lease };
        const key = keys.node(this.name);
        const refusal = lease === '0' ? undefined : claimRefusal(this.name, key, this.info.address, holder);
        if (refusal) this.nameTaken(refusal);
        return;
      }
      const seen = this.published;
      await this.publish(stop, '0');
      if (this.published !== seen) {
        const ops: Op[] = [...this.health].map(([pool, v]) => ({ key: keys.healthPool(this.name, pool), value: v }));
        if (this.status !== undefined) ops.push({ key: keys.status(this.name), value: this.status });
        await this.write(ops, stop);
      }
      this.log.warn({ event: 'nodeRecordRestored', node: this.name, lease: this.leaseId });
    } catch (err) {
      this.log.debug({ event: 'nodeRecordRestoreFailed', node: this.name, err: (err as Error).message });
    } finally {
      this.restoring = false;
    }
  }

  private onLost(lease: Lease, err: Error): void {
    if (this.closed || this.lease !== lease) return;
    this.lease = undefined;
    this.keeper?.stop();
    lease.release();
    const mapped = new StoreError('LEASE_LOST', `node ${this.name}: lease ${this.leaseId} lost: ${err.message}`, {
      cause: err,
    });
    this.log.warn({ event: 'nodeLeaseLost', node: this.name, err: err.message });
    this.options.onLeaseLost?.(mapped);
    const retry = async (): Promise<void> => {
      let failures = 0;
      while (!this.closed) {
        try {
          await this.grantAndWrite();
          this.options.onReregistered?.();
          return;
        } catch (e) {
          if (this.closed) return;
          if (e instanceof StoreError && e === this.refusal) return this.nameTaken(e);
          failures += 1;
          const retryMs = Math.min(REREGISTER_RETRY_MS * 2 ** (failures - 1), REREGISTER_RETRY_MAX_MS);
          // Said once per loss; the attempts after it (etcd still away) at debug.
          this.log[failures === 1 ? 'warn' : 'debug']({
            event: 'nodeReregisterFailed',
            node: this.name,
            failures,
            retryMs,
            err: (e as Error).message,
          });
          await this.pause(retryMs);
        }
      }
    };
    this.queue = this.queue.then(retry, retry);
  }

  /** Resolves after `ms`, or at once when the registration is closed or abandoned meanwhile. */
  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const end = () => {
        clearTimeout(wait.timer);
        if (this.retryWait === wait) this.retryWait = undefined;
        resolve();
      };
      const wait = { timer: setTimeout(end, ms), end };
      this.retryWait = wait;
    });
  }

  /** Writes `ops` on the current lease (registration-write.ts). */
  private write(ops: readonly Op[], stop?: () => boolean, claimedAt?: string): Promise<StoreError[]> {
    return writeRegistration(this.ns, this.name, () => this.leaseId, ops, stop, claimedAt);
  }

  /**
   * Another address holds the name: this agent is no longer that node. Said once (onNameTaken); reports are refused
   * from then on, so nothing more is written under the name (a write on this lease would take the holder's keys).
   */
  private nameTaken(err: StoreError): void {
    if (this.taken || this.closed) return;
    this.taken = err;
    this.options.onNameTaken?.(err);
  }

  private assertOpen(): void {
    if (this.closed) throw new StoreError('CLOSED', `node ${this.name}: registration closed`);
    if (this.taken)
      throw new StoreError('CONFLICT', `node ${this.name}: reports stopped: ${this.taken.message}`, {
        cause: this.taken,
        ...(this.taken.key === undefined ? {} : { key: this.taken.key }),
      });
  }

  async reportHealth(members: ReadonlyMap<string, MemberStatus>): Promise<void> {
    this.assertOpen();
    const next = new Map<string, string>();
    for (const [pool, rec] of groupByPool(members)) next.set(pool, encodePoolStatus(pool, rec));
    const ops: Op[] = [];
    for (const [pool, v] of next) {
      if (this.health.get(pool) !== v) ops.push({ key: keys.healthPool(this.name, pool), value: v });
    }
    for (const pool of this.health.keys()) {
      if (!next.has(pool)) ops.push({ key: keys.healthPool(this.name, pool) });
    }
    if (ops.length === 0) return;
    // `health` is what etcd holds (or, without a lease, what re-registration writes): it takes the new view only
    // once written, so a retry of the same view after a failed write (a timeout) writes it instead of finding
    // nothing changed and leaving the old records in place.
    let refused: StoreError[] = [];
    if (this.lease) {
      try {
        refused = await this.write(ops);
      } catch (err) {
        throw toStoreError(err, `report health of ${this.name}`);
      }
    }
    this.health.clear();
    const refusedKeys = new Set(refused.map((e) => e.key));
    for (const [pool, v] of next) if (!refusedKeys.has(keys.healthPool(this.name, pool))) this.health.set(pool, v);
    this.published += 1;
    const first = refused[0];
    if (first) {
      const names = refused.map((e) => e.key).join(', ');
      throw new StoreError(
        'TOO_LARGE',
        `report health of ${this.name}: ${names}: refused, the other pools reported (${first.message})`,
        { cause: first, ...(first.key === undefined ? {} : { key: first.key }) },
      );
    }
  }

  async reportStatus(status: NodeStatusReport): Promise<void> {
    this.assertOpen();
    this.status = JSON.stringify({ ...status, at: status.at ?? new Date().toISOString() });
    this.published += 1;
    if (!this.lease) return;
    try {
      await this.ns.put(keys.status(this.name)).value(this.status).lease(this.leaseId).exec();
    } catch (err) {
      throw toStoreError(err, `report status of ${this.name}`);
    }
  }

  /** Stops keepalives without revoking, as if the agent died: the lease expires after its TTL. */
  abandon(): void {
    this.closed = true;
    this.abandoned = true;
    this.retryWait?.end();
    this.keeper?.stop();
    this.lease?.release();
    this.lease = undefined;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.retryWait?.end();
    this.keeper?.stop();
    // A re-registration grant in flight revokes its own lease once it sees `closed` (grantAndWrite): wait for it, so
    // the caller does not close the etcd client under it (the lease and records would then stay for the TTL). Bounded
    // by CLOSE_WAIT_ATTEMPTS attempts (the grant, a txn under way, the revoke): a grant etcd never answers must not
    // hold the agent's exit.
    let bound: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.queue.catch(() => undefined),
      new Promise<void>((resolve) => {
        bound = setTimeout(resolve, CLOSE_WAIT_ATTEMPTS * this.attemptMs);
      }),
    ]);
    clearTimeout(bound);
    const lease = this.lease;
    this.lease = undefined;
    if (lease)
      await lease
        .revoke()
        .catch((err) => this.log.warn({ event: 'leaseRevokeFailed', node: this.name, err: String(err) }));
    this.log.info({ event: 'nodeDeregistered', node: this.name });
  }
}
