/**
 * Maglev lookup-table population (Eisenbud et al., "Maglev: A Fast and Reliable Software Network
 * Load Balancer", NSDI'16, §3.4, Pseudocode 1).
 *
 * Each backend i has a preference list over the M slots, permutation[i][j] = (offset + j * skip) mod M,
 * with offset = h1(name) mod M and skip = h2(name) mod (M - 1) + 1. M prime makes every list a full
 * permutation. Backends take turns claiming their next preferred free slot until the table is full.
 * We never materialise the N x M permutation matrix (gigabytes at N = 1,000, M = 655,373): each backend
 * only keeps the position it will try next.
 *
 * Fleet consistency: the result depends only on the set of (name, weight) pairs. Turns go in the order
 * of backend names, "as the names are the same on all nodes" (Cilium pkg/maglev), and the name hashes
 * use no seed or platform input, so every node builds the identical table.
 *
 * Weights (§3.4: "adjusting the relative frequency of the backends' turns"): every round each backend earns
 * weight / maxWeight credit and takes a turn per whole credit. A heavy backend therefore takes one slot
 * per round, interleaved with the others, instead of its whole share in its first turn (the flaw that
 * makes it win contested slots and skews churn). Weight 0 never earns a turn: that is how a draining
 * member keeps its registration but gets no new flows.
 */
import { MaglevError } from './errors.js';
import { fill } from './fill.js';
import { murmur3, OFFSET_HASH_SEED, SKIP_HASH_SEED } from './name-hash.js';
import { isPrime, nextPrime } from './prime.js';

export interface BackendSpec {
  /** Stable, fleet-wide name (for pool members: `address:port` unless the fleet file names it). */
  readonly name: string;
  /** Relative share of slots; default 1. 0 gives no slots (draining). Must be finite and >= 0. */
  readonly weight?: number;
}

/** Slot value when no backend has a positive weight: the data plane drops such flows. */
export const NO_BACKEND = -1;
/** The paper's default-sized table (§3.4 evaluates M = 65,537 and 655,373). */
export const DEFAULT_TABLE_SIZE = 65_537;
/**
 * Upper bound on M: the flow hash scales a 32-bit hash by M in float64 arithmetic, exact while
 * hash * M < 2^53, i.e. M < 2^21. 2,097,143 is the largest prime below 2^21.
 */
export const MAX_TABLE_SIZE = 2_097_143;

/** Validates `size` as a Maglev table size for `backendCount` backends; throws MaglevError. */
export function assertTableSize(size: number, backendCount = 0): void {
  if (!Number.isSafeInteger(size) || size < 2 || size > MAX_TABLE_SIZE) {
    throw new MaglevError(
      'TABLE_SIZE_INVALID',
      `size: ${String(size)} is not a table size (a prime from 2 to ${MAX_TABLE_SIZE})`,
    );
  }
  if (!isPrime(size)) {
    throw new MaglevError(
      'TABLE_SIZE_INVALID',
      `size: ${size} is not prime (Maglev §3.4 needs a prime; next prime is ${nextPrime(size)})`,
    );
  }
  if (size <= backendCount) {
    throw new MaglevError(
      'TOO_MANY_BACKENDS',
      `size: ${size} must be larger than the number of backends (${backendCount})`,
    );
  }
}

/** Validates names and weights; returns the weights with defaults applied (same order). */
export function validateBackends(backends: readonly BackendSpec[]): Float64Array {
  const weights = new Float64Array(backends.length);
  const seen = new Set<string>();
  backends.forEach((b, i) => {
    if (typeof b?.name !== 'string' || b.name.length === 0) {
      throw new MaglevError(
        'BACKEND_NAME_INVALID',
        `backends[${i}].name: ${JSON.stringify(b?.name)} is not a non-empty string`,
      );
    }
    if (seen.has(b.name)) {
      throw new MaglevError('BACKEND_NAME_DUPLICATE', `backends[${i}].name: "${b.name}" appears more than once`);
    }
    seen.add(b.name);
    const w = b.weight ?? 1;
    if (typeof w !== 'number' || !Number.isFinite(w) || w < 0) {
      throw new MaglevError(
        'BACKEND_WEIGHT_INVALID',
        `backends[${i}].weight: ${String(w)} is not a finite number >= 0 (backend "${b.name}")`,
      );
    }
    weights[i] = w;
  });
  return weights;
}

/** Compares by UTF-16 code units: locale-free, so identical on every node. */
function byName(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Builds the Maglev lookup table. Entry i is the index, in `backends`, of the backend owning slot i,
 * or NO_BACKEND if no backend has a positive weight.
 */
export function buildTable(backends: readonly BackendSpec[], size: number = DEFAULT_TABLE_SIZE): Int32Array {
  const weights = validateBackends(backends);
  assertTableSize(size, backends.length);
  const table = new Int32Array(size);

  const order = backends
    .map((_b, i) => i)
    .filter((i) => (weights[i] as number) > 0)
    .sort((x, y) => byName((backends[x] as BackendSpec).name, (backends[y] as BackendSpec).name));
  const n = order.length;
  if (n === 0) return table.fill(NO_BACKEND);

  // Per backend k: cursor[2k] is the slot it tries next (its permutation at turns taken + probes), cursor[2k+1]
  // its skip. Interleaved, so each turn touches one cache line.
  const cursor = new Int32Array(2 * n);
  const owner = new Int32Array(n);
  const rate = new Float64Array(n);
  let maxWeight = 0;
  for (const i of order) maxWeight = Math.max(maxWeight, weights[i] as number);
  for (let k = 0; k < n; k++) {
    const i = order[k] as number;
    const name = (backends[i] as BackendSpec).name;
    cursor[2 * k] = murmur3(name, OFFSET_HASH_SEED) % size;
    cursor[2 * k + 1] = (murmur3(name, SKIP_HASH_SEED) % (size - 1)) + 1;
    owner[k] = i;
    rate[k] = (weights[i] as number) / maxWeight;
  }

  fill(table, cursor, owner, rate);
  return table;
}

/** buildTable() with the names attached, ready for diffTables(), churn() and tableStats(). */
export function buildNamedTable(
  backends: readonly BackendSpec[],
  size: number = DEFAULT_TABLE_SIZE,
): { readonly backends: readonly string[]; readonly slots: Int32Array } {
  return { backends: backends.map((b) => b.name), slots: buildTable(backends, size) };
}
