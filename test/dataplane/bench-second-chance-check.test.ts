/**
 * The second-chance bench's path check (packages/dataplane/bench/second-chance-check.ts): its figures are of the
 * paths they name only if b1 forwarded the miss flood and decapsulated the hit flood; otherwise the bench fails.
 */
import { describe, expect, test } from 'vitest';
import { checkSecondChancePaths } from '../../packages/dataplane/bench/second-chance-check.js';

describe('bench second-chance path check', () => {
  test('bench second-chance - both floods took their paths (a few packets lost): passes', () => {
    expect(() => checkSecondChancePaths({ scPackets: 20_000, scForwarded: 19_990, scLocal: 19_950 })).not.toThrow();
  });

  test.each([
    ['the hit flood was sent on too', { scPackets: 20_000, scForwarded: 40_000, scLocal: 0 }],
    ['the miss flood was decapsulated', { scPackets: 20_000, scForwarded: 0, scLocal: 40_000 }],
    ['no counters read', { scPackets: 20_000 }],
  ])('bench second-chance - %s: fails naming both counters', (_what, f) => {
    expect(() => checkSecondChancePaths(f)).toThrow(/forwarded \d+ and decapsulated with its socket \d+ of 20000/);
  });
});
