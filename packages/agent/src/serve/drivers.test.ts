import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bpffsPathProblem } from '@l4fleet/dataplane';
import { pino } from 'pino';
import { describe, expect, test } from 'vitest';
import type { HostFacts } from '../config/host.js';
import { parseAgentConfig } from '../config/parse.js';
import { preflightProblems } from '../config/preflight.js';
import { createConfiguredDataPlane, DATA_PLANE_DRIVER_SPECS } from './drivers.js';

const logger = pino({ level: 'silent' });

/** agent.yaml as a user writes it (a parsed config is not input: its sections carry resolved defaults). */
const rawConfig = (dataplane: object = {}) => ({
  node: { name: 'lb1', interface: 'eth0', address: '198.18.0.11', address6: '2001:db8::11' },
  bgp: { asn: 65001, peers: [{ address: '198.18.0.1', asn: 65000 }] },
  etcd: { endpoints: ['http://198.18.0.2:2379'] },
  state: { enabled: false },
  dataplane: { driver: 'bpf', ...dataplane },
});
const bpfConfig = (dataplane: object = {}) => parseAgentConfig(rawConfig(dataplane));

function host(change: Partial<HostFacts> = {}): HostFacts {
  return {
    hasInterface: (n) => n === 'eth0',
    isLocalAddress: (a) => ['198.18.0.11', '2001:db8::11', '127.0.0.1'].includes(a),
    canRead: () => true,
    canWriteDir: () => true,
    onPath: () => false, // bpf needs no program on PATH (nft is the nftables driver's)
    hasNetAdmin: () => true,
    missingBpfFile: () => undefined,
    forwarding: () => true,
    hasSysAdmin: () => false, // as under the unit
    isBpffs: (p) => p === '/sys/fs/bpf',
    bpffsPathProblem: () => undefined,
    isSocket: () => true,
    unitStopTimeout: () => ({ shown: '1min' }),
    ...change,
  };
}

const messages = (problems: { path: string; message: string }[]) => problems.map((p) => `${p.path}: ${p.message}`);

describe('agent drivers - bpf', () => {
  test('a built bpf driver on a host with the interface has no prerequisites missing', () => {
    expect(preflightProblems(bpfConfig(), host())).toEqual([]);
  });

  test('--check names the missing loader, the missing interface and CAP_NET_ADMIN', () => {
    const problems = messages(
      DATA_PLANE_DRIVER_SPECS.bpf.prerequisites(
        bpfConfig(),
        host({
          hasInterface: () => false,
          hasNetAdmin: () => false,
          missingBpfFile: () => '/opt/l4fleet/native/bin/l4fleet-bpf',
        }),
      ),
    );
    expect(problems).toEqual([
      'node.interface: "eth0" does not exist on this host (the bpf data plane hooks it)',
      'dataplane.driver: "bpf" needs CAP_NET_ADMIN, which this process does not have (run as root or grant it)',
      'dataplane.driver: "bpf" needs /opt/l4fleet/native/bin/l4fleet-bpf, which is missing (build @l4fleet/dataplane with clang, libbpf-dev, libelf-dev)',
    ]);
  });

  test('--check names a bpffsPath that is no bpffs when this process cannot mount one (no CAP_SYS_ADMIN)', () => {
    // The driver mounts a bpffs where none is, which needs CAP_SYS_ADMIN; the unit has none: the start would fail.
    const at = (path?: string) =>
      DATA_PLANE_DRIVER_SPECS.bpf.prerequisites(bpfConfig(path ? { bpffsPath: path } : {}), host());
    expect(at()).toEqual([]);
    expect(messages(at('/run/l4fleet/bpf'))).toEqual([
      'dataplane.bpffsPath: "/run/l4fleet/bpf" is not a mounted bpffs, and this process cannot mount one (no CAP_SYS_ADMIN): mount it first (mount -t bpf bpf /run/l4fleet/bpf, or an fstab line), or use /sys/fs/bpf, which systemd mounts at boot',
    ]);
    // With CAP_SYS_ADMIN (root outside the unit) the driver mounts it itself.
    expect(
      DATA_PLANE_DRIVER_SPECS.bpf.prerequisites(
        bpfConfig({ bpffsPath: '/run/l4fleet/bpf' }),
        host({ hasSysAdmin: () => true }),
      ),
    ).toEqual([]);
  });

  test('--check names a bpffsPath the start refuses (/, a non-empty directory) in its words, with or without CAP_SYS_ADMIN', () => {
    // The start never mounts a bpffs over / or over files (bpffs.ts); --check asked only whether it could mount.
    const dir = mkdtempSync(join(tmpdir(), 'l4fleet-bpffs-'));
    try {
      writeFileSync(join(dir, 'keep'), 'x');
      for (const hasSysAdmin of [true, false]) {
        const at = (path: string) =>
          messages(
            DATA_PLANE_DRIVER_SPECS.bpf.prerequisites(
              bpfConfig({ bpffsPath: path }),
              host({ hasSysAdmin: () => hasSysAdmin, isBpffs: () => false, bpffsPathProblem }),
            ),
          );
        expect(at('/')).toEqual([`dataplane.bpffsPath: ${bpffsPathProblem('/')}`]);
        expect(at('/')[0]).toBe(
          'dataplane.bpffsPath: "/" is the root directory: a bpffs mounted there would hide the whole filesystem',
        );
        expect(at(dir)).toEqual([
          `dataplane.bpffsPath: "${dir}" is a non-empty directory (keep) and not a bpffs: a bpffs mounted there would hide its files`,
        ]);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('--check refuses an encapsulation source that is not this host', () => {
    const problems = messages(
      DATA_PLANE_DRIVER_SPECS.bpf.prerequisites(
        bpfConfig({ encapSourceAddress: '198.18.0.99', encapSourceAddress6: '2001:db8::99' }),
        host(),
      ),
    );
    expect(problems).toEqual([
      'dataplane.encapSourceAddress: "198.18.0.99" is not assigned to any interface on this host (the outer source of encapsulated packets)',
      'dataplane.encapSourceAddress6: "2001:db8::99" is not assigned to any interface on this host (the outer source of encapsulated packets)',
    ]);
  });

  test('the nftables driver does not ask for the bpf build', () => {
    const c = parseAgentConfig({ ...rawConfig(), dataplane: { driver: 'nftables' } });
    const problems = DATA_PLANE_DRIVER_SPECS.nftables.prerequisites(
      c,
      host({ onPath: (p) => p === 'nft', missingBpfFile: () => '/x' }),
    );
    expect(problems).toEqual([]);
  });

  test('driver bpf builds the bpf data plane, which checks its options (pin name) when created', () => {
    // A pin name the agent's parser would refuse, forced past it: the driver's own check proves it was chosen.
    const c = { ...bpfConfig(), dataplane: { ...bpfConfig().dataplane, pinName: 'a/b' } };
    expect(() => createConfiguredDataPlane(c, logger)).toThrow(/pinName: "a\/b" is not a name/);
  });

  test('--check with xdp native names each announced family whose forwarding is off on node.interface', () => {
    const off = (family: 4 | 6) => host({ forwarding: (i, f) => !(i === 'eth0' && f === family) });
    const { address6: _v6, ...v4only } = rawConfig().node;
    const xdp = (extra: object = {}) =>
      parseAgentConfig({ ...rawConfig({ xdp: 'native' }), node: { ...v4only, ...extra } });
    expect(messages(DATA_PLANE_DRIVER_SPECS.bpf.prerequisites(xdp(), off(4)))).toEqual([
      'dataplane.xdp: "native" needs net.ipv4.conf.eth0.forwarding=1 (it is 0): bpf_fib_lookup refuses there, so the XDP fast path would forward no IPv4 packet',
    ]);
    // IPv6 only matters when the node announces IPv6 (node.address6).
    expect(DATA_PLANE_DRIVER_SPECS.bpf.prerequisites(xdp(), off(6))).toEqual([]);
    expect(messages(DATA_PLANE_DRIVER_SPECS.bpf.prerequisites(xdp({ address6: '2001:db8::11' }), off(6)))).toEqual([
      'dataplane.xdp: "native" needs net.ipv6.conf.eth0.forwarding=1 (it is 0): bpf_fib_lookup refuses there, so the XDP fast path would forward no IPv6 packet',
    ]);
    // xdp off asks nothing of forwarding.
    expect(DATA_PLANE_DRIVER_SPECS.bpf.prerequisites(bpfConfig(), off(4))).toEqual([]);
  });

  test('driver bpf gets dataplane.xdp: a value forced past the parser reaches the driver, which names it', () => {
    const c = { ...bpfConfig(), dataplane: { ...bpfConfig().dataplane, xdp: 'generic' as 'native' } };
    expect(() => createConfiguredDataPlane(c, logger)).toThrow(/xdp: "generic" is not one of off, native/);
  });
});
