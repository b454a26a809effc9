/**
 * The etcd key layout, version 1 (docs/design/0002-etcd-layout.md). Every key lives under the prefix
 * (default `/l4fleet`) and `v1/`, so a future layout can be written beside this one and switched to.
 *
 *   v1/desired/current                 pointer: generation id, chunk count, sha256, encoding, hashSeed
 *                                      (and the document itself when it is at most INLINE_MAX_BYTES)
 *   v1/desired/gen/<gen>/<nnnnnn>      the fleet document in chunks of at most CHUNK_BYTES
 *   v1/nodes/<node>                    node registration (leased)
 *   v1/drain/<node>                    operator drain flag (not leased: survives agent restarts)
 *   v1/health/<node>/<pool>            a node's health view of one pool (leased to the node)
 *   v1/decided/<pool>                  the aggregator's decided member status of one pool
 *   v1/history/<pool>                  the aggregator's table history of one pool (second chance, 0011)
 *   v1/status/<node>                   node status: table checksums, announced VIPs, BGP, fail-static (leased)
 *   v1/election/aggregator/<lease>     etcd3 Election keys of the aggregator
 */
export const LAYOUT_VERSION = 'v1';
export const DEFAULT_PREFIX = '/l4fleet';
/** Chunk size of the desired document: well under etcd's 1.5 MiB default request limit (--max-request-bytes). */
export const CHUNK_BYTES = 512 * 1024;
/** Documents up to this size live inside the pointer key itself (one write per apply, no read after a watch event). */
export const INLINE_MAX_BYTES = 64 * 1024;
/** Documents larger than this are gzipped (100 VIPs x 1,000 members is ~8 MB of JSON, ~1 MB gzipped). */
export const GZIP_THRESHOLD_BYTES = 128 * 1024;
/** Writes batched into one txn stay below etcd's default --max-txn-ops 128 and well below 1.5 MiB. */
export const MAX_TXN_OPS = 100;
export const MAX_TXN_BYTES = 1024 * 1024;
export const AGGREGATOR_ELECTION = 'aggregator';

/** Key builders relative to the layout namespace `${prefix}/v1/`. */
export const keys = {
  pointer: `desired/current`,
  generations: `desired/gen/`,
  generation: (gen: string) => `desired/gen/${gen}/`,
  chunk: (gen: string, i: number) => `desired/gen/${gen}/${String(i).padStart(6, '0')}`,
  nodes: `nodes/`,
  node: (name: string) => `nodes/${name}`,
  drains: `drain/`,
  drain: (name: string) => `drain/${name}`,
  health: `health/`,
  healthOfNode: (node: string) => `health/${node}/`,
  healthPool: (node: string, pool: string) => `health/${node}/${pool}`,
  decided: `decided/`,
  decidedPool: (pool: string) => `decided/${pool}`,
  history: `history/`,
  historyPool: (pool: string) => `history/${pool}`,
  statuses: `status/`,
  status: (node: string) => `status/${node}`,
} as const;

/** Node names become key segments: config's rule (no `/`, bounded length). */
export { NODE_NAME } from '@l4fleet/config';

/** The namespace prefix with exactly one trailing slash. */
export function normalizePrefix(prefix: string): string {
  return `${prefix.replace(/\/+$/, '')}/`;
}

/** The namespace all layout-v1 keys are relative to: `/l4fleet/v1/`. */
export function layoutNamespace(prefix: string): string {
  return `${normalizePrefix(prefix)}${LAYOUT_VERSION}/`;
}
