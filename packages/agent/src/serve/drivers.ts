/**
 * The data-plane drivers agent.yaml can name (`dataplane.driver`), keyed by that name: how to build each one and
 * what each needs from the machine (checked by `l4fleet agent --check`, without side effects). A new driver is one
 * more name in DATA_PLANE_DRIVERS (config/types.ts) and one more entry here; the compiler asks for both.
 */
import { createBpfDataPlane, createNftablesDataPlane, createProxyDataPlane, type DataPlane } from '@l4fleet/dataplane';
import type { Logger } from 'pino';
import { DEFAULT_BPFFS_PATH } from '../config/defaults.js';
import type { HostFacts } from '../config/host.js';
import type { AgentConfig, DataPlaneDriver } from '../config/types.js';
import type { AgentConfigProblem } from '../errors.js';
import { createDryRunDataPlane } from './dry-run.js';

export interface DataPlaneDriverSpec {
  /** Builds the driver from the validated config. */
  create(config: AgentConfig, logger: Logger): DataPlane;
  /** What the driver needs on this machine; each problem names the field it comes from and its value. */
  prerequisites(config: AgentConfig, host: HostFacts): AgentConfigProblem[];
}

/** The keys of `o` that are set (an absent option stays absent, not `undefined`). */
function pick<T extends object, K extends keyof T>(o: T, keys: readonly K[]): Partial<Pick<T, K>> {
  return Object.fromEntries(keys.filter((k) => o[k] !== undefined).map((k) => [k, o[k]])) as Partial<Pick<T, K>>;
}

/** The kernel-side drivers hook `node.interface` and change kernel state: the interface and CAP_NET_ADMIN. */
function kernelPrerequisites(config: AgentConfig, host: HostFacts, driver: string): AgentConfigProblem[] {
  const problems: AgentConfigProblem[] = [];
  if (!host.hasInterface(config.node.interface)) {
    problems.push({
      path: 'node.interface',
      message: `"${config.node.interface}" does not exist on this host (the ${driver} data plane hooks it)`,
    });
  }
  if (!host.hasNetAdmin()) {
    problems.push({
      path: 'dataplane.driver',
      message: `"${driver}" needs CAP_NET_ADMIN, which this process does not have (run as root or grant it)`,
    });
  }
  return problems;
}

export const DATA_PLANE_DRIVER_SPECS: { readonly [K in DataPlaneDriver]: DataPlaneDriverSpec } = {
  nftables: {
    create: (config, logger) =>
      createNftablesDataPlane({
        interface: config.node.interface,
        tableName: config.dataplane.table,
        logger,
        ...pick(config.dataplane, ['flowTimeoutTcpS', 'flowTimeoutUdpS', 'flowTableSize', 'deltaWriter']),
      }),
    prerequisites(config, host) {
      const problems = kernelPrerequisites(config, host, 'nftables');
      if (!host.onPath('nft')) {
        problems.push({ path: 'dataplane.driver', message: '"nftables" needs the nft program, which is not on PATH' });
      }
      return problems;
    },
  },
  bpf: {
    create: (config, logger) => {
      const dp = config.dataplane;
      return createBpfDataPlane({
        interface: config.node.interface,
        nodeAddresses: [dp.encapSourceAddress, dp.encapSourceAddress6].filter((a): a is string => a !== undefined),
        logger,
        ...pick(dp, ['bpffsPath', 'pinName', 'flowTableSize', 'xdp']),
      });
    },
    prerequisites(config, host) {
      const problems = kernelPrerequisites(config, host, 'bpf');
      const missing = host.missingBpfFile();
      if (missing !== undefined) {
        problems.push({
          path: 'dataplane.driver',
          message: `"bpf" needs ${missing}, which is missing (build @l4fleet/dataplane with clang, libbpf-dev, libelf-dev)`,
        });
      }
      // The driver mounts a bpffs at bpffsPath when none is there, which needs CAP_SYS_ADMIN; the unit grants none
      // (systemd mounts /sys/fs/bpf at boot): without a bpffs there, the start would fail on the mount. It never
      // mounts over / or a non-empty directory, with or without the capability: that comes first, in its words
      // (advising `mount -t bpf bpf /etc` would hide /etc).
      const bpffs = config.dataplane.bpffsPath ?? DEFAULT_BPFFS_PATH;
      const refused = host.bpffsPathProblem(bpffs);
      if (refused !== undefined) problems.push({ path: 'dataplane.bpffsPath', message: refused });
      else if (!host.isBpffs(bpffs) && !host.hasSysAdmin()) {
        problems.push({
          path: 'dataplane.bpffsPath',
          message: `"${bpffs}" is not a mounted bpffs, and this process cannot mount one (no CAP_SYS_ADMIN): mount it first (mount -t bpf bpf ${bpffs}, or an fstab line), or use ${DEFAULT_BPFFS_PATH}, which systemd mounts at boot`,
        });
      }
      // Encapsulated packets leave with this source; a backend answers ICMP errors to it and filters on it.
      for (const k of ['encapSourceAddress', 'encapSourceAddress6'] as const) {
        const a = config.dataplane[k];
        if (a !== undefined && !host.isLocalAddress(a)) {
          problems.push({
            path: `dataplane.${k}`,
            message: `"${a}" is not assigned to any interface on this host (the outer source of encapsulated packets)`,
          });
        }
      }
      // The XDP fast path asks the FIB (bpf_fib_lookup), which refuses on an interface that does not forward: the
      // families this node announces would all take the tc path (docs/design/0007 "XDP fast path").
      if (config.dataplane.xdp === 'native') {
        const iface = config.node.interface;
        for (const family of [4, 6] as const) {
          if ((family === 4 ? config.node.address : config.node.address6) === undefined) continue;
          if (host.forwarding(iface, family) === false) {
            problems.push({
              path: 'dataplane.xdp',
              message: `"native" needs net.ipv${family}.conf.${iface}.forwarding=1 (it is 0): bpf_fib_lookup refuses there, so the XDP fast path would forward no IPv${family} packet`,
            });
          }
        }
      }
      return problems;
    },
  },
  proxy: {
    create: (config, logger) =>
      createProxyDataPlane({
        logger,
        ...(config.dataplane.proxyBindAddress ? { listenAddress: config.dataplane.proxyBindAddress } : {}),
      }),
    prerequisites(config, host) {
      const bind = config.dataplane.proxyBindAddress;
      if (bind === undefined || bind === '0.0.0.0' || bind === '::' || host.isLocalAddress(bind)) return [];
      return [
        {
          path: 'dataplane.proxyBindAddress',
          message: `"${bind}" is not assigned to any interface on this host (the proxy's listeners bind it)`,
        },
      ];
    },
  },
  'dry-run': {
    create: () => createDryRunDataPlane(),
    prerequisites: () => [],
  },
};

/** The configured driver, built. */
export function createConfiguredDataPlane(config: AgentConfig, logger: Logger): DataPlane {
  return DATA_PLANE_DRIVER_SPECS[config.dataplane.driver].create(config, logger);
}
