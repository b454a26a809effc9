/** The FleetStore contract suite (test/support/store-contract.ts) against the etcd store on a real etcd. */
import { type EtcdHandle, startEtcd } from '@l4fleet/test-support/etcd';
import { until } from '@l4fleet/test-support/eventually';
import { contractFleet, describeStoreContract } from '@l4fleet/test-support/store-contract';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { EtcdFleetStore } from './etcd-store.js';

const logger = pino({ level: process.env.L4FLEET_TEST_LOG ?? 'silent' });
let etcd: EtcdHandle;

beforeAll(async () => {
  etcd = await startEtcd();
});
afterAll(async () => {
  await etcd?.stop();
});

describeStoreContract('etcd (real)', async () => {
  const prefix = `/contract-${Math.random().toString(36).slice(2, 8)}`;
  return {
    open: () => new EtcdFleetStore({ endpoints: etcd.endpoints, prefix, logger }),
    corruptPointer: async (hashSeed) => {
      const pointer = hashSeed === undefined ? { schema: 1 } : { schema: 1, hashSeed };
      await etcd.etcdctl('put', `${prefix}/v1/desired/current`, JSON.stringify(pointer));
    },
    compact: async (revision) => {
      await etcd.etcdctl('compact', String(revision));
    },
  };
});

describe('store desired history - a pointer deleted by hand (etcd only: the fake has no delete)', () => {
  test('store desired history - the walk says where the pointer was deleted, and the writes before still read', async () => {
    const prefix = `/contract-${Math.random().toString(36).slice(2, 8)}`;
    const s = new EtcdFleetStore({ endpoints: etcd.endpoints, prefix, logger });
    try {
      const first = await s.apply(contractFleet(2, 5));
      await s.writeDecided(new Map([['web/198.18.0.1:80', 'up']]));
      await etcd.etcdctl('del', `${prefix}/v1/desired/current`);
      expect(await s.getDesiredHistory({ limit: 10 })).toEqual({
        revisions: [],
        more: false,
        compacted: false,
        pointerDeleted: true,
      });
      const recovered = await s.apply(contractFleet(3), { recoverInvalid: true });
      const h = await s.getDesiredHistory({ limit: 10 });
      expect(h.revisions.map((r) => r.revision)).toEqual([recovered.revision]);
      expect(h.pointerDeleted).toBe(true);
      expect((await s.getDesiredAt(first.revision)).fleet).toEqual({ ...contractFleet(2), hashSeed: 5 });
      // A fleet's first write has no such records before it: the walk ends there unremarked.
      const fresh = new EtcdFleetStore({ endpoints: etcd.endpoints, prefix: `${prefix}-fresh`, logger });
      try {
        await fresh.apply(contractFleet(1));
        expect((await fresh.getDesiredHistory({ limit: 10 })).pointerDeleted).toBeUndefined();
      } finally {
        await fresh.close();
      }
    } finally {
      await s.close();
    }
  });
});

// The record gone while its lease lives by a successor's revoke, which both stores play, is in the contract
// (store-contract-nodes.ts); deleted by hand it is etcd only: the fake has no delete of a node record.
describe('store registration - a node record deleted by hand (etcd only: the fake has no such delete)', () => {
  test('store registration - the record is written again after the next renewal, on the same lease', async () => {
    const prefix = `/contract-${Math.random().toString(36).slice(2, 8)}`;
    const s = new EtcdFleetStore({ endpoints: etcd.endpoints, prefix, logger });
    try {
      const reg = await s.registerNode({ name: 'lb1', address: '198.18.2.1' }, { leaseTtlS: 3 });
      await etcd.etcdctl('del', `${prefix}/v1/nodes/lb1`);
      expect(await s.listNodes()).toEqual([]);
      await until('the record back', async () => (await s.listNodes()).length === 1, 10_000, 50);
      expect((await s.listNodes())[0]?.record?.address).toBe('198.18.2.1');
      expect((await s.nodeLeases()).get('lb1')?.grantedS).toBe(3); // on the registration's lease: close() takes it
      await reg.close();
      expect(await s.listNodes()).toEqual([]);
    } finally {
      await s.close();
    }
  });
});
