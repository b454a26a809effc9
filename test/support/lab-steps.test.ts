import { describe, expect, test } from 'vitest';
import { leastFairShare, NEW_BACKEND_FLOWS, NEW_BACKEND_MIN_SHARE, NEW_NODE_FLOWS } from './lab-steps.js';

describe('leastFairShare: the share a fair split falls below by chance once in ~100,000 runs', () => {
  test('the fourth node of four with the lab steps new flows: 11.8%, below the 13% one chance CI run gave', () => {
    expect(leastFairShare(NEW_NODE_FLOWS, 1 / 4)).toBeCloseTo(0.1183, 4);
    expect(leastFairShare(100, 1 / 4)).toBeCloseTo(0.0638, 4);
  });

  test('the fifth backend of five: the fixed NEW_BACKEND_MIN_SHARE is the same bound for its flows', () => {
    expect(leastFairShare(NEW_BACKEND_FLOWS, 1 / 5)).toBeCloseTo(NEW_BACKEND_MIN_SHARE, 2);
  });

  test('no flows is refused, not a bound of -Infinity that any share passes', () => {
    expect(() => leastFairShare(0, 1 / 4)).toThrow(/flows must be > 0, got 0/);
    expect(() => leastFairShare(Number.NaN, 1 / 4)).toThrow(/got NaN/);
  });
});
