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

/** The smallest prime >= n: to suggest a valid table size in error messages and tools. */
export function nextPrime(n: number): number {
  let c = Math.max(2, Math.ceil(n));
  while (!isPrime(c)) c += 1;
  return c;
}
