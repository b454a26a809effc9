/**
 * The `dataplane` section of agent.yaml: which driver forwards and that driver's options. Options of one driver
 * named with another are refused (a `pinName` under `driver: nftables` is a typo or a half-finished switch, not
 * something to ignore silently).
 */
import {
  addressField,
  intField as int,
  oneOfField as oneOf,
  type Problems,
  sectionField as section,
  showValue as show,
  stringField as str,
  valueText,
} from '@l4fleet/config';
import * as d from './defaults.js';
import {
  DATA_PLANE_DRIVERS,
  type DataPlaneDriver,
  type DataPlaneSection,
  type DeltaWriter,
  type NodeSection,
} from './types.js';

const FIELDS = [
  'driver',
  'table',
  'proxyBindAddress',
  'flowTimeoutTcpS',
  'flowTimeoutUdpS',
  'flowTableSize',
  'deltaWriter',
  'encapSourceAddress',
  'encapSourceAddress6',
  'bpffsPath',
  'pinName',
  'xdp',
  'verifyIntervalS',
] as const;

/** Fields only one driver reads; the rest are shared or harmless (`table` has a default every driver carries). */
const ONLY: Partial<Record<(typeof FIELDS)[number], readonly DataPlaneDriver[]>> = {
  flowTimeoutTcpS: ['nftables'], // the bpf flow cache forgets by CLOCK: no idle timeout to set
  flowTimeoutUdpS: ['nftables'],
  deltaWriter: ['nftables'],
  encapSourceAddress: ['bpf'],
  encapSourceAddress6: ['bpf'],
  bpffsPath: ['bpf'],
  pinName: ['bpf'],
  xdp: ['bpf'],
  proxyBindAddress: ['proxy'], // the kernel data planes forward at the VIP: nothing binds
};

const PIN_NAME = /^[A-Za-z0-9_-]{1,64}$/; // one directory under the bpffs mount (the driver's own rule)

function addr(p: Problems, path: string, v: unknown, family?: 4 | 6): string {
  return addressField(p, path, v, family)?.address ?? valueText(v);
}

/** Validates `raw.dataplane`; `node` gives the bpf driver's default encapsulation sources (the next hops). */
export function parseDataPlane(p: Problems, v: unknown, node: NodeSection): DataPlaneSection {
  const dp = section(p, 'dataplane', v, FIELDS);
  const driver = oneOf<DataPlaneDriver>(p, 'dataplane.driver', dp.driver, DATA_PLANE_DRIVERS, 'nftables');
  const named = (DATA_PLANE_DRIVERS as readonly unknown[]).includes(dp.driver ?? 'nftables');
  for (const [field, drivers] of Object.entries(ONLY)) {
    if (named && dp[field] !== undefined && !drivers.includes(driver)) {
      p.add(
        `dataplane.${field}`,
        `${show(dp[field])} is only read by driver ${drivers.join(', ')} (driver is "${driver}")`,
      );
    }
  }
  // Unset: the driver's defaults (@l4fleet/dataplane: 300 s, 30 s, 65,536 entries, auto).
  const seconds = (k: 'flowTimeoutTcpS' | 'flowTimeoutUdpS') =>
    dp[k] === undefined ? {} : { [k]: int(p, `dataplane.${k}`, dp[k], 1, 604_800, 'seconds') };
  const warnings = flowTimeoutWarnings(dp);
  return {
    driver,
    table: str(
      p,
      'dataplane.table',
      dp.table,
      /^[A-Za-z][A-Za-z0-9_]{0,63}$/,
      'an nftables table name (a letter, then letters, digits, _)',
      d.DEFAULT_NFT_TABLE,
    ),
    ...(dp.proxyBindAddress !== undefined
      ? { proxyBindAddress: addr(p, 'dataplane.proxyBindAddress', dp.proxyBindAddress) }
      : {}),
    ...seconds('flowTimeoutTcpS'),
    ...seconds('flowTimeoutUdpS'),
    ...(dp.flowTableSize !== undefined
      ? { flowTableSize: int(p, 'dataplane.flowTableSize', dp.flowTableSize, 1, 16_777_216, 'a number of entries') }
      : {}),
    ...(dp.deltaWriter !== undefined
      ? {
          deltaWriter: oneOf<DeltaWriter>(
            p,
            'dataplane.deltaWriter',
            dp.deltaWriter,
            ['auto', 'netlink', 'nft'],
            'auto',
          ),
        }
      : {}),
    ...(driver === 'bpf' ? bpfOptions(p, dp, node) : {}),
    verifyIntervalS: int(
      p,
      'dataplane.verifyIntervalS',
      dp.verifyIntervalS,
      0,
      86_400,
      'seconds, 0 for off',
      d.DEFAULT_DATAPLANE_VERIFY_INTERVAL_S,
    ),
    ...(warnings.length > 0 ? { warnings } : {}),
  };
}

/**
 * flowTimeoutTcpS / flowTimeoutUdpS no longer decide anything: every fleet VIP has a profile (parseFleet defaults
 * it) and its rules carry the profile's idle timeout (design note 0012). They are still accepted, so an agent.yaml
 * of an earlier version does not stop an upgraded agent, and still passed to the driver: they are in the nftables
 * layout signature, and dropping a value set here would recreate the flow table once (open flows lose their member)
 * at the upgrade. The operator is told instead (the start log, `--check`).
 */
function flowTimeoutWarnings(dp: Record<string, unknown>): string[] {
  return (['flowTimeoutTcpS', 'flowTimeoutUdpS'] as const)
    .filter((k) => dp[k] !== undefined)
    .map(
      (k) =>
        `dataplane.${k}: ${show(dp[k])} has no effect since VIP profiles (design note 0012): a VIP's flows idle out ` +
        'at its vips[].profile.idleTimeoutS (default 300 s TCP, 30 s UDP); set that in the fleet and remove this',
    );
}

/**
 * The bpf driver's options, defaulted. The outer source of encapsulated packets defaults to the node's next hop of
 * that family: it is the node's own address on the router's segment, so replies to it route, and it is the address a
 * backend's decapsulation filter (`l4fleet backend setup`) lists as a fleet node.
 */
function bpfOptions(p: Problems, dp: Record<string, unknown>, node: NodeSection) {
  const src6 =
    dp.encapSourceAddress6 !== undefined
      ? addr(p, 'dataplane.encapSourceAddress6', dp.encapSourceAddress6, 6)
      : node.address6;
  return {
    encapSourceAddress:
      dp.encapSourceAddress !== undefined
        ? addr(p, 'dataplane.encapSourceAddress', dp.encapSourceAddress, 4)
        : node.address,
    ...(src6 !== undefined ? { encapSourceAddress6: src6 } : {}),
    bpffsPath: str(p, 'dataplane.bpffsPath', dp.bpffsPath, /^\/[^\0]*$/, 'an absolute path', d.DEFAULT_BPFFS_PATH),
    pinName: str(
      p,
      'dataplane.pinName',
      dp.pinName,
      PIN_NAME,
      'a pin directory name (1-64 of A-Z a-z 0-9 _ -)',
      d.DEFAULT_BPF_PIN_NAME,
    ),
    xdp: oneOf<'off' | 'native'>(p, 'dataplane.xdp', dp.xdp, ['off', 'native'], 'off'),
  };
}
