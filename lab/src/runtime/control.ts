/** The control network's daemons: etcd and NATS in the control namespace, reachable from the host and the nodes. */
import { join } from 'node:path';
import { etcdMemberArgv, natsArgv as natsServerArgv } from '@l4fleet/daemons';
import type { EtcdMember, Topology } from '../topology/model.js';
import { NATS_PORT } from '../topology/model.js';

/**
 * One member of the lab's etcd cluster. All members live in the control host on their own ports, peers on loopback;
 * a member killed and started again rejoins on its data dir (`--initial-cluster-state new` is ignored once the data
 * dir holds a member: etcd docs, "clustering").
 */
export function etcdArgv(topology: Topology, dataDir: string, member: EtcdMember): string[] {
  const { address, etcdMembers } = topology.control;
  return etcdMemberArgv({
    name: member.name,
    dataDir: join(dataDir, member.name),
    listenClientUrl: `${member.clientUrl},http://127.0.0.1:${member.clientPort}`,
    advertiseClientUrl: `http://${address}:${member.clientPort}`,
    peerUrl: member.peerUrl,
    initialCluster: etcdMembers.map((m) => `${m.name}=${m.peerUrl}`).join(','),
  });
}

export function natsArgv(topology: Topology, dataDir: string): string[] {
  return natsServerArgv({ address: topology.control.address, port: NATS_PORT, jetStreamDir: join(dataDir, 'nats') });
}
