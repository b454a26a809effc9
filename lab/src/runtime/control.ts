/** The control network's daemons: etcd and NATS in the control namespace, reachable from the host and the nodes. */
import { join } from 'node:path';
import type { Topology } from '../topology/model.js';
import { ETCD_CLIENT_PORT, NATS_PORT } from '../topology/model.js';

export function etcdArgv(topology: Topology, dataDir: string): string[] {
  const addr = topology.control.address;
  return [
    'etcd',
    '--name',
    'l4f',
    '--data-dir',
    join(dataDir, 'etcd'),
    '--listen-client-urls',
    `http://${addr}:${ETCD_CLIENT_PORT},http://127.0.0.1:${ETCD_CLIENT_PORT}`,
    '--advertise-client-urls',
    `http://${addr}:${ETCD_CLIENT_PORT}`,
    // Peer traffic stays inside the control namespace: a one-member cluster.
    '--listen-peer-urls',
    'http://127.0.0.1:2380',
    '--initial-advertise-peer-urls',
    'http://127.0.0.1:2380',
    '--initial-cluster',
    'l4f=http://127.0.0.1:2380',
    '--log-level',
    'warn',
  ];
}

export function natsArgv(topology: Topology, dataDir: string): string[] {
  return ['nats-server', '-a', topology.control.address, '-p', String(NATS_PORT), '-js', '-sd', join(dataDir, 'nats')];
}
