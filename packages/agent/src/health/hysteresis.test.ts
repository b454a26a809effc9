import { describe, expect, test } from 'vitest';
import { Hysteresis } from './hysteresis.js';

const LETTER = { unknown: '?', up: 'U', down: 'D' } as const;

/** Feeds `results` (+ ok, - failed) and returns the status after each as ?/U/D. */
function run(rise: number, fall: number, results: string): string {
  const h = new Hysteresis(rise, fall);
  return [...results]
    .map((r) => {
      h.observe(r === '+');
      return LETTER[h.status];
    })
    .join('');
}

describe('hysteresis - rise and fall', () => {
  test.each<[number, number, string, string]>([
    [2, 3, '++---', '?UUUD'],
    [2, 3, '+-+-+-', '??????'],
    [2, 4, '++----', '?UUUUD'],
    [1, 1, '+-+', 'UDU'],
    [2, 2, '++-+--++', '?UUUUDDU'],
    [3, 2, '--+++', '?DDDU'],
  ])('rise %i fall %i: %s gives %s', (rise, fall, results, expected) => {
    expect(run(rise, fall, results)).toBe(expected);
  });

  test('observe() returns the new status only when it changes', () => {
    const h = new Hysteresis(1, 2);
    expect(h.observe(true)).toBe('up');
    expect(h.observe(true)).toBeUndefined();
    expect(h.observe(false)).toBeUndefined();
    expect(h.observe(false)).toBe('down');
    expect(h.observe(false)).toBeUndefined();
  });
});
