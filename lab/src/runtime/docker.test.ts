import { describe, expect, test } from 'vitest';
import { buildTopology, hostOf } from '../topology/model.js';
import { containerSpec } from './docker.js';

describe('docker runtime - the control container', () => {
  test.each([1, 3])('starts every one of %i etcd members with one initial cluster, NATS in the foreground', (n) => {
    const topology = buildTopology({ id: 'x1', etcdMembers: n });
    const shell = containerSpec(topology, hostOf(topology, 'control'), (h) => `/tmp/${h}`).at(-1) ?? '';
    const members = shell.split(' & ').filter((part) => part.includes('/usr/bin/etcd'));
    expect(members).toHaveLength(n);
    const cluster = topology.control.etcdMembers.map((m) => `${m.name}=${m.peerUrl}`).join(',');
    for (const [i, m] of topology.control.etcdMembers.entries()) {
      expect(members[i]).toContain(`--name ${m.name} `);
      expect(members[i]).toContain(`--advertise-client-urls ${m.clientUrl} `);
      expect(members[i]).toContain(`--initial-cluster ${cluster} `);
    }
    expect(shell).toMatch(/ & exec \/usr\/sbin\/nats-server /);
  });
});
