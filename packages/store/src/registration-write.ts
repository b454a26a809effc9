/**
 * The writes of a node's registration (registration.ts): its record, health reports and status, put on its lease in
 * txns below etcd's op and size limits. Apart from the registration's lease, retry and name-taken handling because
 * splitting, fencing and oversized puts are their own concern, and the registration past ~400 lines read as one.
 */
import type { Namespace } from 'etcd3';
import { StoreError } from './errors.js';
import { keys, MAX_TXN_BYTES, MAX_TXN_OPS } from './layout.js';
import { oversizedPut, putBytes } from './request-size.js';

/** A put (with the lease) of `value`, or a delete without one. */
export type Op = { key: string; value?: string };

/**
 * Puts (with the lease) and deletes in txns below etcd's op and size limits. A put beyond MAX_TXN_BYTES (one
 * pool's health of a huge pool) is not sent: etcd would refuse the whole txn without naming the key, and the
 * pools after it would never be written. Its key is deleted instead (no stale report of that pool is left behind)
 * and its refusal returned, naming the key and the size, once everything else is written. A txn is not sent once
 * `stop()` holds (a StoreError CLOSED instead). `leaseId` is read at each txn.
 */
export async function writeRegistration(
  ns: Namespace,
  name: string,
  leaseId: () => string,
  ops: readonly Op[],
  stop: () => boolean = () => false,
  claimedAt?: string,
): Promise<StoreError[]> {
  const refused: StoreError[] = [];
  let batch: Op[] = [];
  let bytes = 0;
  let fence = claimedAt;
  const flush = async () => {
    if (batch.length === 0) return;
    if (stop()) throw new StoreError('CLOSED', `node ${name}: registration closed`);
    const node = keys.node(name);
    // The first txn of a registration holds the record: fenced on the revision claim() read it at, so an agent
    // registering the name meanwhile is not written over. Else always true: a plain multi-op txn.
    const txn = fence === undefined ? ns.if(node, 'Create', '>', -1) : ns.if(node, 'Mod', '==', fence);
    const res = await txn
      .then(
        ...batch.map((op) =>
          op.value === undefined ? ns.delete().key(op.key) : ns.put(op.key).value(op.value).lease(leaseId()),
        ),
      )
      .commit();
    // Changed since claim() read it: another agent registered the name, or the previous process of this node's lease
    // expired and took the record. A CONFLICT without reason 'nameTaken': the next attempt reads the record again, and
    // only a holder at another address found then refuses the name.
    if (fence !== undefined && !res.succeeded)
      throw new StoreError('CONFLICT', `register node ${name}: ${node} changed while registering`, {
        key: node,
      });
    fence = undefined;
    batch = [];
    bytes = 0;
  };
  for (const wanted of ops) {
    const tooLarge = wanted.value === undefined ? undefined : oversizedPut(`node ${name}`, wanted.key, wanted.value);
    if (tooLarge) refused.push(tooLarge);
    const op: Op = tooLarge ? { key: wanted.key } : wanted;
    const size = putBytes(op.key, op.value ?? '');
    if (batch.length >= MAX_TXN_OPS || bytes + size > MAX_TXN_BYTES) await flush();
    batch.push(op);
    bytes += size;
  }
  await flush();
  return refused;
}
