/**
 * A node registration of the in-memory fake (memory-store.ts), as the etcd one (registration.ts): its own lease
 * carries the node record, the status and each pool's health; each key stays on the lease of its last put, so ending
 * this lease takes only what is still on it (a node registered again by another client keeps that one's records).
 * A name another agent (another address) holds is refused (node-claim.ts).
 */
import { StoreError } from './errors.js';
import { keys } from './layout.js';
import { type MemoryFleet, MemoryLease } from './memory-fleet.js';
import { claimRefusal } from './node-claim.js';
import { encodePoolStatus, groupByPool } from './records.js';
import type { NodeInfo, NodeRegistration, NodeStatusReport } from './types.js';

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
      lease: undefined,
    });
    if (refusal) throw refusal;
  }
  const lease = new MemoryLease(ttlS);
  f.nodes.set(name, { value: { ...info, registeredAt: new Date().toISOString() }, lease });
  f.bump('nodes');
  /** What this registration last wrote of each pool's health (registration.ts: only changed pools are written). */
  const health = new Map<string, string>();
  let open = true;
  const closed = () => new StoreError('CLOSED', `node ${name}: registration closed`);
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
      f.bump('health');
    },
    reportStatus: async (status: NodeStatusReport) => {
      if (!open) throw closed();
      if (lease.ended) return; // the etcd registration keeps it for a new lease; the fake grants none
      f.statuses.set(name, { value: { ...status, at: status.at ?? new Date().toISOString() }, lease });
      f.bump('nodes');
    },
    close: async () => {
      if (!open) return;
      open = false;
      onClose();
      f.endLease(lease); // a revoke
    },
  };
  return { reg, lease };
}
