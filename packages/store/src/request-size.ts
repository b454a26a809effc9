/**
 * The size bound of one record written by l4fleet, checked before sending. etcd refuses a request beyond its
 * --max-request-bytes (1.5 MiB by default; a request beyond gRPC's 2 MiB receive limit is refused as
 * RESOURCE_EXHAUSTED) with a message that names neither the key nor the pool. MAX_TXN_BYTES (1 MiB) is the one
 * budget: it is what every batched write already stays below, and it leaves room under etcd's default for the
 * namespace prefix, the lease or fence compare and the protobuf framing. A record beyond it is refused here, naming
 * the key and its size, and the caller writes the other records.
 */
import { StoreError } from './errors.js';
import { MAX_TXN_BYTES } from './layout.js';

/** Bytes of one put as etcd counts them against its request limit (near enough: key and value, UTF-8). */
export function putBytes(key: string, value: string): number {
  return Buffer.byteLength(key) + Buffer.byteLength(value);
}

/** A TOO_LARGE error naming `key` and its size when the put is beyond MAX_TXN_BYTES; undefined when it fits. */
export function oversizedPut(what: string, key: string, value: string): StoreError | undefined {
  const bytes = putBytes(key, value);
  if (bytes <= MAX_TXN_BYTES) return undefined;
  return new StoreError(
    'TOO_LARGE',
    `${what}: ${key}: ${bytes.toLocaleString('en-US')} bytes, above the ${MAX_TXN_BYTES.toLocaleString('en-US')} ` +
      `bytes one write may carry (etcd refuses requests beyond --max-request-bytes, 1.5 MiB by default); not written`,
    { key },
  );
}
