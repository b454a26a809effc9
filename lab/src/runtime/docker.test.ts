import { describe, expect, test } from 'vitest';
import { DEFAULT_DATA_PATH, type LabDataPath, NFTABLES_DATA_PATH } from '../topology/data-path.js';
import { buildTopology, hostOf, type TopologyOptions } from '../topology/model.js';
import { containerSpec } from './docker.js';
import { isEtcdMemberArgv } from './docker-etcd.js';

const BFD = { intervalMs: 100, multiplier: 3 };
/** nftables nodes with backends on the fabric (the bpf data path's own cases are below). */
const dockerTopology = (options: TopologyOptions) => buildTopology({ ...options, ...NFTABLES_DATA_PATH });

describe('docker runtime - the control container', () => {
  test.each([1, 3])('starts every one of %i etcd members with one initial cluster, NATS in the foreground', (n) => {
    const topology = dockerTopology({ id: 'x1', etcdMembers: n });
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

describe('docker runtime - etcd member processes', () => {
  test.each([
    [['/usr/bin/etcd', '--name', 'etcd2', '--data-dir', '/var/lib/l4fleet/etcd2'], 'etcd2', true],
    [['/usr/bin/etcd', '--name', 'etcd2'], 'etcd1', false],
    // etcd12 is not etcd1, and the control container's shell (whose one argument holds every member) is no member.
    [['/usr/bin/etcd', '--name', 'etcd12'], 'etcd1', false],
    [['sh', '-c', '/usr/bin/etcd --name etcd1 & exec nats-server'], 'etcd1', false],
    [['/usr/bin/etcd', '--data-dir', 'etcd1'], 'etcd1', false],
  ])('%j is member %s: %s', (argv, name, expected) => {
    expect(isEtcdMemberArgv(argv, name)).toBe(expected);
  });
});

describe('docker runtime - BFD in the router and node containers', () => {
  const mountsOf = (spec: string[]) => spec.flatMap((a, i) => (spec[i - 1] === '-v' ? [a] : []));
  const capsOf = (spec: string[]) => spec.flatMap((a, i) => (spec[i - 1] === '--cap-add' ? [a] : []));

  test('with BFD: the router mounts its bfdd.conf, every node its own bfdd.conf with the caps bfdd asks for', () => {
    const topology = dockerTopology({ id: 'x2', bfd: BFD });
    const router = containerSpec(topology, hostOf(topology, 'router'), (h) => `/s/${h}`);
    expect(mountsOf(router)).toContain('/s/router/bfdd.conf:/etc/frr/bfdd.conf:ro');
    for (const node of ['node1', 'node2', 'node3']) {
      const spec = containerSpec(topology, hostOf(topology, node), (h) => `/s/${h}`);
      expect(mountsOf(spec)).toContain(`/s/${node}/bfd/bfdd.conf:/etc/frr/bfdd.conf:ro`);
      expect(capsOf(spec)).toEqual(expect.arrayContaining(['NET_ADMIN', 'NET_RAW', 'SYS_ADMIN']));
    }
  });

  test('without BFD: no bfdd.conf is mounted anywhere (the entrypoints then start no bfdd)', () => {
    const topology = dockerTopology({ id: 'x3' });
    for (const host of topology.hosts.filter((h) => h.kind !== 'host')) {
      const spec = containerSpec(topology, host, (h) => `/s/${h}`);
      expect(mountsOf(spec).filter((m) => m.includes('bfdd'))).toEqual([]);
    }
  });
});

describe('docker runtime - bpf nodes', () => {
  const mountsOf = (spec: string[]) => spec.flatMap((a, i) => (spec[i - 1] === '-v' ? [a] : []));
  const capsOf = (spec: string[]) => spec.flatMap((a, i) => (spec[i - 1] === '--cap-add' ? [a] : []));

  test('a bpf node mounts its bpf file system at the same path (agent.yaml bpffsPath) and gets SYS_ADMIN once', () => {
    const topology = buildTopology({ id: 'x4', bfd: BFD, ...DEFAULT_DATA_PATH });
    const spec = containerSpec(topology, hostOf(topology, 'node2'), (h) => `/s/${h}`);
    expect(mountsOf(spec)).toContain('/s/node2/bpffs:/s/node2/bpffs');
    expect(capsOf(spec).filter((c) => c === 'SYS_ADMIN')).toHaveLength(1);
    const backend = containerSpec(topology, hostOf(topology, 'backend1'), (h) => `/s/${h}`);
    expect(mountsOf(backend)).toEqual([]);
  });

  test('an nftables node mounts no bpf file system', () => {
    const topology = dockerTopology({ id: 'x5' });
    const spec = containerSpec(topology, hostOf(topology, 'node1'), (h) => `/s/${h}`);
    expect(mountsOf(spec).filter((m) => m.includes('bpffs'))).toEqual([]);
    expect(capsOf(spec)).toEqual(['NET_ADMIN']);
  });
});

describe('docker runtime - VIPs on the backends lo', () => {
  const vipsEnv = (spec: string[]) => spec.find((a, i) => spec[i - 1] === '-e' && a.startsWith('L4FLEET_VIPS='));

  test.each<[LabDataPath, string]>([
    [{ dataplane: 'nftables', backendNetwork: 'l2', forwarding: 'nat' }, 'nat: the members see their own address'],
    [{ dataplane: 'bpf', backendNetwork: 'routed', forwarding: 'gue' }, 'gue: backend setup puts them on lo'],
  ])('%j: the entrypoint puts no VIP on lo (%s), as the netns plan', (dataPath) => {
    const topology = buildTopology({ id: 'x6', ...dataPath });
    const spec = containerSpec(topology, hostOf(topology, 'backend1'), (h) => `/s/${h}`);
    expect(vipsEnv(spec)).toBe('L4FLEET_VIPS=');
  });

  test('l2 (DSR): every VIP on lo', () => {
    const topology = dockerTopology({ id: 'x7' });
    const spec = containerSpec(topology, hostOf(topology, 'backend1'), (h) => `/s/${h}`);
    expect(vipsEnv(spec)?.split('=')[1]?.split(',')).toHaveLength(topology.vips.length);
  });
});

describe('docker runtime - images only from this engine', () => {
  test.each(['router', 'node1', 'backend1', 'control', 'client'])(
    'the %s container is run with --pull never, before its image',
    (host) => {
      const topology = dockerTopology({ id: 'x8' });
      const spec = containerSpec(topology, hostOf(topology, host), (h) => `/s/${h}`);
      const pull = spec.indexOf('--pull');
      expect(pull).toBeGreaterThan(0);
      expect(spec[pull + 1]).toBe('never');
      expect(pull).toBeLessThan(spec.findIndex((a) => a.startsWith('l4fleet/')));
    },
  );
});
