import { describe, expect, test } from 'vitest';
import { MaglevError } from './errors.js';
import { isPrime, nextPrime } from './prime.js';

describe('prime', () => {
  test.each([
    [0, 2],
    [2, 2],
    [65_536, 65_537],
    [2_097_142, 2_097_143],
  ])('prime - nextPrime(%d) is %d', (n, expected) => {
    expect(nextPrime(n)).toBe(expected);
    expect(isPrime(expected)).toBe(true);
  });

  // Past 2^53 `c + 1 === c` and isPrime refuses unsafe integers: without the guard the search never ends.
  test.each([2 ** 53, 1e300, Number.POSITIVE_INFINITY, Number.NaN, Number.MAX_SAFE_INTEGER - 1])(
    'prime - nextPrime(%d) refuses input with no safe prime at or above it',
    (n) => {
      expect(() => nextPrime(n)).toThrow(MaglevError);
      expect(() => nextPrime(n)).toThrow(/has no safe-integer prime at or above it/);
    },
  );
});
