import { describe, expect, test } from 'vitest';
import { predictChurn } from './churn.js';
import { parseFleet } from './parse.js';
import type { Fleet } from './types.js';

const SIZE = 251;
interface Shape {
  readonly addresses?: readonly string[];
  readonly ports?: readonly number[];
  readonly weights?: readonly number[];
  readonly hash?: string;
  readonly hashSeed?: number;
}
const fleetOf = (shape: Shape = {}): Fleet =>
  parseFleet({
    hashSeed: shape.hashSeed ?? 7,
    pools: [
      {
        name: 'web',
        healthCheck: { type: 'tcp' },
        members: [0, 1, 2, 3].map((i) => ({
          name: `be${i}`,
          address: shape.addresses?.[i] ?? `198.18.0.${i + 1}`,
          port: shape.ports?.[i] ?? 80,
          weight: shape.weights?.[i] ?? 1,
        })),
      },
    ],
    vips: [
      {
        address: '198.51.100.10',
        port: 80,
        protocol: 'tcp',
        pool: 'web',
        tableSize: SIZE,
        hash: shape.hash ?? '5-tuple',
      },
    ],
  });
const churnOf = (before: Fleet, after: Fleet) => predictChurn(before, after, new Map());

describe('config churn - what moves flows', () => {
  test('the same fleet moves nothing; a weight change moves some slots, not all', () => {
    expect(churnOf(fleetOf(), fleetOf())).toEqual([]);
    const [c] = churnOf(fleetOf(), fleetOf({ weights: [1, 1, 1, 0] }));
    expect(c?.changed).toBeGreaterThan(0);
    expect(c?.changed).toBeLessThan(SIZE);
  });

  test('blue/green: the same member names at new addresses move every slot', () => {
    const green = fleetOf({ addresses: ['198.18.1.1', '198.18.1.2', '198.18.1.3', '198.18.1.4'] });
    expect(churnOf(fleetOf(), green)).toEqual([
      { vip: '198.51.100.10:80/tcp', pool: 'web', changed: SIZE, size: SIZE, fraction: 1 },
    ]);
  });

  test("a named member's new address or port moves its slots, and only its", () => {
    const moved = churnOf(fleetOf(), fleetOf({ addresses: [undefined, '198.18.9.9'] as string[] }))[0];
    const ported = churnOf(fleetOf(), fleetOf({ ports: [80, 8080] }))[0];
    // be1's share of a 4-member table: about a quarter of the slots.
    for (const c of [moved, ported]) {
      expect(c?.changed).toBeGreaterThan(SIZE / 4 - 10);
      expect(c?.changed).toBeLessThan(SIZE / 4 + 10);
    }
    expect(ported?.changed).toBe(moved?.changed);
  });

  test.each([
    ['the hash mode', fleetOf({ hash: 'source-ip' })],
    ['the hash seed', fleetOf({ hashSeed: 8 })],
  ])('a change of %s moves every flow: all slots', (_what, after) => {
    expect(churnOf(fleetOf(), after)).toEqual([
      { vip: '198.51.100.10:80/tcp', pool: 'web', changed: SIZE, size: SIZE, fraction: 1 },
    ]);
  });

  test('a file without a seed keeps the stored one (the store keeps it on apply): no churn', () => {
    const { hashSeed: _, ...unseeded } = fleetOf();
    expect(churnOf(fleetOf(), unseeded)).toEqual([]);
  });
});
