import { buildTable } from '@l4fleet/maglev';
import { describe, expect, test } from 'vitest';
import { changedSlots } from './slots.js';
import type { VipTable } from './types.js';

const table = (backends: VipTable['backends'], size = 13): VipTable => ({
  vip: { address: '198.51.100.1', port: 80, protocol: 'tcp' },
  hash: '5-tuple',
  seed: 1,
  backends,
  slots: buildTable(backends, size),
});
const a = { name: 'a', address: '198.18.0.1', port: 80 };
const b = { name: 'b', address: '198.18.0.2', port: 80 };
const c = { name: 'c', address: '198.18.0.3', port: 80 };

describe('changedSlots', () => {
  test('by name: reordered backends change nothing, a leaving backend moves its slots', () => {
    expect(changedSlots(table([a, b, c]), table([c, a, b]))).toBe(0);
    const three = table([a, b, c]);
    const two = table([a, b]);
    const owned = Array.from(three.slots).filter((i) => three.backends[i]?.name === 'c').length;
    expect(changedSlots(three, two)).toBeGreaterThanOrEqual(owned);
    expect(changedSlots(three, two)).toBeLessThan(13);
  });

  test('another size changes every slot; a key can count a moved address as a change', () => {
    expect(changedSlots(table([a, b]), table([a, b], 17))).toBe(17);
    const moved = table([a, { ...b, address: '198.18.0.9' }]);
    expect(changedSlots(table([a, b]), moved)).toBe(0);
    const byAddress = changedSlots(table([a, b]), moved, (x) => `${x.name}|${x.address}`);
    expect(byAddress).toBe(Array.from(moved.slots).filter((i) => i === 1).length);
  });
});
