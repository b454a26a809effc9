/** The control network's daemons: etcd and NATS in the control namespace, reachable from the host and the nodes. */
import { join } from 'node:path';
import { etcdMemberArgv, natsArgv as natsServerArgv } from '@l4fleet/daemons';
import type { Topology } from '../topology/model.js';
import { ETCD_CLIENT_PORT, NATS_PORT } from '../topology/model.js';

export function etcdArgv(topology: Topology, dataDir: string): string[] {
  const addr = topology.control.address;
  // Peer traffic stays inside the control namespace: a one-member cluster.
  const peerUrl = 'http://127.0.0.1:2380';
  return etcdMemberArgv({
    name: 'l4f',
    dataDir: join(dataDir, 'etcd'),
    listenClientUrl: `http://${addr}:${ETCD_CLIENT_PORT},http://127.0.0.1:${ETCD_CLIENT_PORT}`,
    advertiseClientUrl: `http://${addr}:${ETCD_CLIENT_PORT}`,
    peerUrl,
    initialCluster: `l4f=${peerUrl}`,
  });
}

export function natsArgv(topology: Topology, dataDir: string): string[] {
  return natsServerArgv({ address: topology.control.address, port: NATS_PORT, jetStreamDir: join(dataDir, 'nats') });
}
