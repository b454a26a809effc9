/**
 * The tests' etcd: @l4fleet/daemons' launcher (Debian's etcd 3.4 as our child, optionally with TLS and root auth),
 * or, with L4FLEET_TEST_RUNTIME=containers, the same etcd in a container through testcontainers (docker-etcd.ts;
 * needs a reachable Docker engine, the image is built locally), with the same handle.
 */
import {
  type EtcdClusterHandle,
  type EtcdHandle,
  type EtcdMemberHandle,
  type EtcdOptions,
  startEtcd as startEtcdProcess,
} from '@l4fleet/daemons';

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

/** The member etcd names leader (asked of every member; call with none frozen). */
export async function etcdLeader(cluster: EtcdClusterHandle): Promise<EtcdMemberHandle> {
  const status = JSON.parse(await cluster.etcdctl(['endpoint', 'status', '-w', 'json'])) as {
    Endpoint: string;
    Status: { header: { member_id: number | string }; leader: number | string };
  }[];
  const ep = status.find((s) => String(s.Status.header.member_id) === String(s.Status.leader))?.Endpoint;
  const leader = cluster.members.find((m) => m.endpoint === ep);
  if (!leader) throw new Error(`no leader in ${JSON.stringify(status)}`);
  return leader;
}
