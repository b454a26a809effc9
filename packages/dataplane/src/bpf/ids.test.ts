import { describe, expect, test } from 'vitest';
import type { DataPlaneError } from '../errors.js';
import { freeIds } from './ids.js';

describe('bpf ids - lowest free id, one cursor per plan', () => {
  test('each call gives the lowest id not in use, gaps first, and never one it gave before', () => {
    const used = new Set([0, 1, 3, 6]);
    const next = freeIds((i) => used.has(i), 10, 'backend');
    const got = Array.from({ length: 4 }, () => next('b'));
    expect(got).toEqual([2, 4, 5, 7]);
  });

  test('40,000 new ids over 20,000 in use probe each id once (linear), not from 0 each time', () => {
    const used = new Set(Array.from({ length: 20_000 }, (_x, i) => 2 * i)); // every even id below 40,000
    let probes = 0;
    const next = freeIds(
      (i) => {
        probes += 1;
        return used.has(i);
      },
      65_536,
      'backend',
    );
    const got = Array.from({ length: 40_000 }, () => next('b'));
    expect(got.slice(0, 3)).toEqual([1, 3, 5]);
    expect(got.at(-1)).toBe(59_999);
    expect(new Set(got).size).toBe(40_000);
    expect(probes).toBe(60_000);
  });

  test('past the last id: BPF_IDS_EXHAUSTED naming what wanted one', () => {
    const next = freeIds((i) => i < 2, 3, 'VIP');
    expect(next('vip 198.51.100.7:80/tcp')).toBe(2);
    expect(() => next('vip 198.51.100.8:80/tcp')).toThrow(
      expect.objectContaining({
        code: 'BPF_IDS_EXHAUSTED',
        message: 'vip 198.51.100.8:80/tcp: all 3 VIP ids are in use',
      }) as DataPlaneError,
    );
  });
});
