/**
 * The tests' etcd: @l4fleet/daemons' launcher (Debian's etcd 3.4 as our child, optionally with TLS and root auth),
 * or, with L4FLEET_TEST_RUNTIME=containers, the same etcd in a container through testcontainers (docker-etcd.ts;
 * needs a reachable Docker engine, the image is built locally), with the same handle.
 */
import { type EtcdHandle, type EtcdOptions, startEtcd as startEtcdProcess } from '@l4fleet/daemons';

export {
  type EtcdClusterHandle,
  type EtcdClusterOptions,
  type EtcdHandle,
  type EtcdMemberHandle,
  type EtcdOptions,
  type EtcdTls,
  startEtcdCluster,
} from '@l4fleet/daemons';

export async function startEtcd(opts: EtcdOptions = {}): Promise<EtcdHandle> {
  if (process.env.L4FLEET_TEST_RUNTIME === 'containers') {
    // Loaded on demand: the process runtime (and CI, which has no Docker engine) never loads testcontainers.
    const { startEtcdContainer } = await import('./docker-etcd.js');
    return await startEtcdContainer(opts);
  }
  return await startEtcdProcess(opts);
}
