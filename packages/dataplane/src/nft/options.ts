/** The nftables driver's options (driver.ts): their defaults, and their checks before the driver starts. */

import type { Logger } from 'pino';
import { DataPlaneError } from '../errors.js';
import type { Exec } from '../exec.js';
import { NFT_BATCH_PATH, nftBatchAvailable } from './batch.js';

export const DEFAULT_TABLE_NAME = 'l4fleet';
/** Idle time after which a TCP flow forgets its backend (it then follows the table, which may not have moved). */
export const DEFAULT_FLOW_TIMEOUT_TCP_S = 300;
/** UDP has no end-of-flow signal; 30 s is the kernel conntrack default for unreplied UDP. */
export const DEFAULT_FLOW_TIMEOUT_UDP_S = 30;
/** Entries per flow map (one map per IP family and protocol). */
export const DEFAULT_FLOW_TABLE_SIZE = 65_536;
/** Quiet time after an apply before the overlays are folded into the slot maps (see plan.ts). */
export const DEFAULT_FOLD_DELAY_MS = 1_000;

export interface NftablesDataPlaneOptions {
  /** The node's interface facing the router and the backends (one L2 segment). */
  readonly interface: string;
  /** Default "l4fleet". The driver never touches any other table. */
  readonly tableName?: string;
  readonly flowTimeoutTcpS?: number;
  readonly flowTimeoutUdpS?: number;
  readonly flowTableSize?: number;
  readonly logger: Logger;
  /** Run nft and ip inside this named network namespace (`ip netns`); default: the current one. */
  readonly netns?: string;
  /** Replaces process execution (tests). */
  readonly exec?: Exec;
  /**
   * How element-only changes (backends joining, leaving, changing health: the steady state) reach the
   * kernel. "netlink": l4fleet-nft-batch, built with the package from native/nft-batch/ (one
   * long-running process, no nft parsing: a quarter of a 65,537-slot table in about 30 ms). "nft":
   * `nft -f` for everything (about 110 ms for the same change). "auto" (default): netlink when the
   * binary was built, else nft. Tables, chains and rules are always written by nft.
   */
  readonly deltaWriter?: 'auto' | 'netlink' | 'nft';
  /** Quiet milliseconds after an apply before its overlay entries are folded into the slot maps. */
  readonly foldDelayMs?: number;
}

const IDENTIFIER = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;

function positiveInt(name: string, v: number | undefined, dflt: number, max: number): number {
  const x = v ?? dflt;
  if (!Number.isInteger(x) || x < 1 || x > max) {
    throw new DataPlaneError('OPTIONS_INVALID', `${name}: ${String(v)} is not an integer from 1 to ${max}`);
  }
  return x;
}

/** The options with their defaults, checked: OPTIONS_INVALID names the first one out of range. */
export function checkOptions(opts: NftablesDataPlaneOptions) {
  const table = opts.tableName ?? DEFAULT_TABLE_NAME;
  if (!IDENTIFIER.test(table))
    throw new DataPlaneError('OPTIONS_INVALID', `tableName: ${JSON.stringify(table)} is not an nft identifier`);
  if (typeof opts.interface !== 'string' || !/^[^\s"/]{1,15}$/.test(opts.interface)) {
    throw new DataPlaneError(
      'OPTIONS_INVALID',
      `interface: ${JSON.stringify(opts.interface)} is not an interface name`,
    );
  }
  const flowTimeoutTcpS = positiveInt('flowTimeoutTcpS', opts.flowTimeoutTcpS, DEFAULT_FLOW_TIMEOUT_TCP_S, 7 * 86_400);
  const flowTimeoutUdpS = positiveInt('flowTimeoutUdpS', opts.flowTimeoutUdpS, DEFAULT_FLOW_TIMEOUT_UDP_S, 7 * 86_400);
  const flowTableSize = positiveInt('flowTableSize', opts.flowTableSize, DEFAULT_FLOW_TABLE_SIZE, 16_777_216);
  const foldDelayMs = opts.foldDelayMs ?? DEFAULT_FOLD_DELAY_MS;
  if (!Number.isInteger(foldDelayMs) || foldDelayMs < 0 || foldDelayMs > 3_600_000) {
    throw new DataPlaneError('OPTIONS_INVALID', `foldDelayMs: ${String(opts.foldDelayMs)} is not 0-3600000`);
  }
  const deltaWriter = opts.deltaWriter ?? 'auto';
  if (!['auto', 'netlink', 'nft'].includes(deltaWriter)) {
    throw new DataPlaneError(
      'OPTIONS_INVALID',
      `deltaWriter: ${JSON.stringify(deltaWriter)} is not auto, netlink or nft`,
    );
  }
  const haveBatch = deltaWriter !== 'nft' && nftBatchAvailable();
  if (deltaWriter === 'netlink' && !haveBatch) {
    throw new DataPlaneError(
      'OPTIONS_INVALID',
      `deltaWriter: "netlink" needs ${NFT_BATCH_PATH}, which is missing or not executable (build @l4fleet/dataplane with gcc installed)`,
    );
  }
  return { table, flowTimeoutTcpS, flowTimeoutUdpS, flowTableSize, foldDelayMs, haveBatch };
}
