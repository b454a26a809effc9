import { describe, expect, test } from 'vitest';
import { tableStats } from './stats.js';
import { buildNamedTable } from './table.js';

describe('maglev stats - slots per backend', () => {
  test.each(['__proto__', 'constructor', 'toString', 'hasOwnProperty'])(
    'a backend named %s keeps its own count (no Object.prototype key is special)',
    (name) => {
      const table = buildNamedTable([{ name }, { name: 'a' }], 13);
      const stats = tableStats(table);
      const own = table.slots.filter((i) => i === 0).length;
      expect(own).toBeGreaterThan(0);
      expect(Object.keys(stats.slotsPerBackend).sort()).toEqual([name, 'a'].sort());
      expect(Object.entries(stats.slotsPerBackend)).toContainEqual([name, own]);
      expect(JSON.parse(JSON.stringify(stats)).slotsPerBackend).toEqual({ [name]: own, a: 13 - own });
    },
  );

  test('an ordinary name absent from the table reads as undefined, not an inherited member', () => {
    const stats = tableStats(buildNamedTable([{ name: 'a' }, { name: 'b' }], 13));
    expect(stats.slotsPerBackend.toString).toBeUndefined();
    expect(stats.slotsPerBackend.a! + stats.slotsPerBackend.b!).toBe(13);
  });
});
