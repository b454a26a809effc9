/**
 * A node registration of the in-memory fake (memory-store.ts), as the etcd one (registration.ts): its own lease
 * carries the node record, the status and each pool's health; each key stays on the lease of its last put, so ending
 * this lease takes only what is still on it (a node registered again by another client keeps that one's records).
 * A name another agent (another address) holds is refused (node-claim.ts). A record gone while this lease lives is
 * written again with the health and status, as the etcd registration does after a renewal (restoreRecord).
 */
import type { MemberStatus } from '@l4fleet/config';
import { StoreError } from './errors.js';
import { keys } from './layout.js';
import { type MemoryFleet, MemoryLease } from './memory-fleet.js';
import { claimRefusal } from './node-claim.js';
import { encodePoolStatus, groupByPool } from './records.js';
import type { NodeInfo, NodeRecord, NodeRegistration, NodeStatusReport } from './types.js';

/** Each lease's id, named in a refusal as etcd's lease id is: `(lease N)`. */
const leaseIds = new WeakMap<MemoryLease, string>();
let lastLeaseId = 0;

/** Registers `info` on a new lease of `ttlS`; `onClose` runs once, at the registration's close(). */
export function memoryRegistration(
  f: MemoryFleet,
  info: NodeInfo,
  ttlS: number,
  onClose: () => void,
): { reg: NodeRegistration; lease: MemoryLease } {
  const { name } = info;
  // Another agent's live record of the name is refused as the etcd store does (node-claim.ts).
  const held = f.nodes.get(name);
  if (held && !held.lease.ended) {
    const refusal = claimRefusal(name, keys.node(name), info.address, {
      address: held.value.address,
      lease: leaseIds.get(held.lease),
    });
    if (refusal) throw refusal;
  }
  const lease = new MemoryLease(ttlS);
  lastLeaseId += 1;
  leaseIds.set(lease, String(lastLeaseId));
  const record: NodeRecord = { ...info, registeredAt: new Date().toISOString() };
  f.nodes.set(name, { value: record, lease });
  f.bump('nodes');
  /** What this registration last wrote of each pool's health (registration.ts: only changed pools are written). */
  const health = new Map<string, string>();
  /** The same, as records (what a restore writes back), and the last status. */
  let healthRecords = new Map<string, Readonly<Record<string, MemberStatus>>>();
  let status: NodeStatusReport | undefined;
  let open = true;
  const closed = () => new StoreError('CLOSED', `node ${name}: registration closed`);
  /**
   * The etcd registration looks after each renewal whether its record is gone (deleted by hand, or taken by the
   * lease of a same-address successor that stopped first) and writes it again with its health and status, unless
   * another agent put one. The fake renews on no clock: it looks after each change of the node records, in a
   * microtask (after the change, as a renewal comes after it).
   */
  const restore = () =>
    queueMicrotask(() => {
      if (!open || lease.ended || f.nodes.has(name)) return;
      f.nodes.set(name, { value: record, lease });
      if (status !== undefined) f.statuses.set(name, { value: status, lease });
      for (const [pool, members] of healthRecords) f.setHealth(name, pool, members, lease);
      f.bump('nodes');
      if (healthRecords.size > 0) f.bump('health');
    });
  let nodeChanges = f.listeners.get('nodes');
  if (!nodeChanges) f.listeners.set('nodes', (nodeChanges = new Set()));
  nodeChanges.add(restore);
  const reg: NodeRegistration = {
    name,
    reportHealth: async (members) => {
      if (!open) throw closed();
      if (lease.ended) throw new StoreError('NOT_FOUND', `node ${name}: not registered (its lease ended)`);
      const records = groupByPool(members); // validates the member keys like the etcd store
      const next = new Map([...records].map(([pool, rec]) => [pool, encodePoolStatus(pool, rec)]));
      const put = [...next].filter(([pool, v]) => health.get(pool) !== v).map(([pool]) => pool);
      const deleted = [...health.keys()].filter((pool) => !next.has(pool));
      if (put.length === 0 && deleted.length === 0) return;
      // Deletes go by key, whichever lease that key is on now (as etcd's); puts take this registration's lease.
      for (const pool of deleted) f.setHealth(name, pool, undefined, lease);
      for (const pool of put) f.setHealth(name, pool, records.get(pool), lease);
      health.clear();
      for (const [pool, v] of next) health.set(pool, v);
      healthRecords = records;
      f.bump('health');
    },
    reportStatus: async (report: NodeStatusReport) => {
      if (!open) throw closed();
      const value = { ...report, at: report.at ?? new Date().toISOString() };
      if (lease.ended) return; // the etcd registration keeps it for a new lease; the fake grants none
      status = value;
      f.statuses.set(name, { value, lease });
      f.bump('nodes');
    },
    close: async () => {
      if (!open) return;
      open = false;
      nodeChanges.delete(restore);
      onClose();
      f.endLease(lease); // a revoke
    },
  };
  return { reg, lease };
}
