/**
 * Bounds on what a record read from etcd may claim (docs/design/0002-etcd-layout.md, "Bounds"). Anyone with write
 * access to etcd can write any key; these bounds are checked BEFORE a claim is acted on (a pointer claiming a
 * billion chunks is refused without fetching one), so no record can exhaust the memory of, or hang, the CLI or an
 * agent. They are read bounds, looser than what l4fleet writes: every record the writers (registration, decided,
 * history) put is at most MAX_TXN_BYTES (1 MiB, below etcd's default 1.5 MiB --max-request-bytes), a larger one is
 * refused before sending, naming its key and size (request-size.ts). Fleet sizes themselves are @l4fleet/config's
 * (MAX_VIPS, MAX_MEMBERS_PER_POOL, ...), checked by parseFleet on every read.
 */
import { MAX_MEMBERS_PER_POOL, MAX_VIPS } from '@l4fleet/config';
import { CHUNK_BYTES, INLINE_MAX_BYTES } from './layout.js';

/**
 * Stored (possibly gzipped) bytes of the desired document: 32 MiB. The largest fleet config accepts (250,000 members)
 * is ~25 MB of JSON and ~2 MB gzipped; 100 VIPs x 1,000 members is 0.6 MiB gzipped.
 */
export const MAX_DOCUMENT_BYTES = 32 * 1024 * 1024;
/** Chunks of one generation: MAX_DOCUMENT_BYTES / CHUNK_BYTES = 64. */
export const MAX_DOCUMENT_CHUNKS = MAX_DOCUMENT_BYTES / CHUNK_BYTES;
/** The document's JSON after gunzip, in bytes (a gzip bomb stops here): 64 MiB. */
export const MAX_DOCUMENT_JSON_BYTES = 64 * 1024 * 1024;
/** The pointer key's value: an inline document plus the pointer's own fields. */
export const MAX_POINTER_BYTES = INLINE_MAX_BYTES + 4 * 1024;
/**
 * One small record (node, drain, status, health, decided, election value) as read, in bytes: 8 MiB holds a pool
 * status of MAX_MEMBERS_PER_POOL members with long names (written by hand, or to an etcd with a raised request
 * limit by an earlier version). l4fleet itself writes none beyond MAX_TXN_BYTES (1 MiB): a pool status of ~38,000
 * members with default names (~27 bytes each), fewer with ramps (~55 bytes more each) or long names; a larger
 * pool's health or decided record is refused as TOO_LARGE naming the key (etcd's default 1.5 MiB request limit
 * would refuse it anyway, naming nothing).
 */
export const MAX_RECORD_BYTES = 8 * 1024 * 1024;
/** Members in one health or decided record (one pool): config's MAX_MEMBERS_PER_POOL. */
export const MAX_MEMBERS_PER_RECORD = MAX_MEMBERS_PER_POOL;
/** VIP entries (tables, announced) in one node status record: config's MAX_VIPS. */
export const MAX_VIPS_PER_STATUS = MAX_VIPS;
/** BGP peers in one node status record. */
export const MAX_PEERS_PER_STATUS = 256;
/**
 * Members a node's status record names with a probe failure (probeFailures); a node seeing more down lists these
 * (the first by key) and counts the rest in probeFailuresOmitted. 256 x a few hundred bytes stays small.
 */
export const MAX_PROBE_FAILURES_PER_STATUS = 256;
/** Keys read from one key family (nodes, drain, status, health, decided, election); the rest are reported. */
export const MAX_KEYS_PER_FAMILY = 100_000;
/** A text field of a record (address, version, member name, checksum, peer state), in characters. */
export const MAX_TEXT_CHARS = 1_024;
