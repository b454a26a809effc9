/** The FleetStore contract suite (test/support/store-contract.ts) against the etcd store on a real etcd. */
import { type EtcdHandle, startEtcd } from '@l4fleet/test-support/etcd';
import { describeStoreContract } from '@l4fleet/test-support/store-contract';
import pino from 'pino';
import { afterAll, beforeAll } from 'vitest';
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
    corruptPointer: async () => {
      await etcd.etcdctl('put', `${prefix}/v1/desired/current`, '{"schema":1}');
    },
    compact: async (revision) => {
      await etcd.etcdctl('compact', String(revision));
    },
  };
});
