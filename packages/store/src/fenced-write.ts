/**
 * The elected aggregator's writes (decided status, table history): a prefix brought to exactly the wanted records,
 * in transactions bounded by MAX_TXN_OPS and MAX_TXN_BYTES, each fenced by the leader's election key so a deposed
 * leader (lease gone) can never overwrite its successor's decisions.
 */
import { fenceFailed, fenceOf } from './election.js';
import { StoreError, toStoreError } from './errors.js';
import { MAX_TXN_BYTES, MAX_TXN_OPS } from './layout.js';
import { oversizedPut } from './request-size.js';
import type { StoreContext } from './store-context.js';
import type { Leadership } from './types.js';

export interface FencedPrefixWrite {
  /** The prefix the records live under (e.g. keys.decided). */
  readonly prefix: string;
  /** Key -> value wanted; a stored key with the same value is left alone. */
  readonly wanted: ReadonlyMap<string, string>;
  /** Delete stored keys under `prefix` that are not wanted (history) or keep them (decided: pools come and go). */
  readonly deleteOthers: boolean;
  /** For error messages: `write decided`. */
  readonly what: string;
  readonly leadership?: Leadership;
  /**
   * Each put in a transaction of its own, and one etcd refuses as too large (TOO_LARGE: a size etcd or gRPC names,
   * never NOSPACE or "too many requests", which fail the write like any other error) does not stop the others:
   * the refusal is thrown once every other op was written (history: one pool's record must not keep the other
   * pools' records from being updated or expired; decided: one pool's status must not keep the other pools'
   * from being written). Default false: one batch after another, the first failure stops the write.
   *
   * Either way a put beyond MAX_TXN_BYTES (key and value) is not sent: it is refused up front naming the key and
   * its size (request-size.ts), the other ops are written, and the refusal is thrown at the end.
   */
  readonly putsApart?: boolean;
}

interface Op {
  readonly key: string;
  /** Undefined: delete. */
  readonly value?: string;
}

/** Splits ops into transactions of at most MAX_TXN_OPS and (beyond a single op) MAX_TXN_BYTES of values. */
export function txnBatches(ops: readonly Op[]): Op[][] {
  const batches: Op[][] = [];
  let batch: Op[] = [];
  let bytes = 0;
  for (const op of ops) {
    const size = op.value?.length ?? 0;
    if (batch.length > 0 && (batch.length >= MAX_TXN_OPS || bytes + size >= MAX_TXN_BYTES)) {
      batches.push(batch);
      batch = [];
      bytes = 0;
    }
    batch.push(op);
    bytes += size;
  }
  if (batch.length > 0) batches.push(batch);
  return batches;
}

export async function writeFencedPrefix(ctx: StoreContext, w: FencedPrefixWrite): Promise<void> {
  const { ns, client } = ctx;
  const fence = w.leadership ? fenceOf(w.leadership) : undefined;
  if (w.leadership && (!fence || !w.leadership.isLeader())) {
    throw new StoreError('LEASE_LOST', `${w.what}: ${w.leadership.node} is not the leader`);
  }
  const current = await ns.getAll().prefix(w.prefix).exec();
  const stored = new Map(current.kvs.map((kv) => [kv.key.toString(), kv.value.toString()]));
  const ops: Op[] = [];
  const refused: { key: string; err: StoreError }[] = [];
  for (const [key, value] of w.wanted) {
    if (stored.get(key) === value) continue;
    const tooLarge = oversizedPut(w.what, key, value);
    if (tooLarge) refused.push({ key, err: tooLarge });
    else ops.push({ key, value });
  }
  if (w.deleteOthers) for (const key of stored.keys()) if (!w.wanted.has(key)) ops.push({ key });
  const batches = w.putsApart
    ? [
        ...ops.filter((op) => op.value !== undefined).map((op) => [op]),
        ...txnBatches(ops.filter((op) => op.value === undefined)),
      ]
    : txnBatches(ops);
  let written = 0;
  for (const batch of batches) {
    // Fencing: the txn applies only while the leader's election key exists (its lease is alive). Without a
    // leadership (tests, `recover`) the comparison always holds.
    const txn = fence ? client.if(fence, 'Create', '>', 0) : ns.if(`${w.prefix}_`, 'Create', '>', -1);
    let res: { succeeded: boolean };
    try {
      res = await txn
        .then(...batch.map((op) => (op.value === undefined ? ns.delete().key(op.key) : ns.put(op.key).value(op.value))))
        .commit();
    } catch (err) {
      const e = toStoreError(err, w.what);
      const one = batch[0] as Op;
      if (!w.putsApart || batch.length !== 1 || one.value === undefined || e.code !== 'TOO_LARGE') throw err;
      refused.push({ key: one.key, err: e });
      continue;
    }
    if (!res.succeeded) {
      if (w.leadership) fenceFailed(w.leadership, w.what);
      throw new StoreError('LEASE_LOST', `${w.what}: ${w.leadership?.node} lost leadership (its election key is gone)`);
    }
    written += batch.length;
  }
  const first = refused[0];
  if (first) {
    const names = refused.map((r) => r.key).join(', ');
    // Only when something else was written: a caller reads "the other records written" as a partial write.
    const others = written > 0 ? 'the other records written' : 'no other record to write';
    throw new StoreError('TOO_LARGE', `${w.what}: ${names}: refused, ${others} (${first.err.message})`, {
      cause: first.err,
      key: first.key,
    });
  }
}
