import { MaglevError } from './errors.js';

/** 2^53 - 111: the largest prime that is a safe integer; past it `nextPrime` has nothing to return. */
const LARGEST_SAFE_PRIME = 9_007_199_254_740_881;

/** Deterministic trial division; table sizes are at most a few million, so this is microseconds. */
export function isPrime(n: number): boolean {
  if (!Number.isSafeInteger(n) || n < 2) return false;
  if (n % 2 === 0) return n === 2;
  if (n % 3 === 0) return n === 3;
  for (let f = 5; f * f <= n; f += 6) {
    if (n % f === 0 || n % (f + 2) === 0) return false;
  }
  return true;
}

/**
 * The smallest prime >= n: to suggest a valid table size in error messages and tools. Throws MaglevError for
 * NaN or n past the largest safe prime: there `c + 1 === c` and isPrime refuses, so the search would never end.
 */
export function nextPrime(n: number): number {
  if (Number.isNaN(n) || n > LARGEST_SAFE_PRIME) {
    throw new MaglevError(
      'TABLE_SIZE_INVALID',
      `n: ${String(n)} has no safe-integer prime at or above it (the largest is ${LARGEST_SAFE_PRIME})`,
    );
  }
  let c = Math.max(2, Math.ceil(n));
  while (!isPrime(c)) c += 1;
  return c;
}
