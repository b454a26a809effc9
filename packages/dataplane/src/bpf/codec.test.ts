import { describe, expect, test } from 'vitest';
import { u32View } from './codec.js';

describe('bpf codec - u32View', () => {
  const words = Uint32Array.from([1, 0xffff_ffff, 7, 65_537]);
  const reply = Buffer.concat([Buffer.alloc(8), Buffer.from(words.buffer)]);

  test('an aligned run of u32 is a view of the reply (no copy)', () => {
    const v = u32View(reply, 8, 4);
    expect([...v]).toEqual([...words]);
    expect(v.buffer).toBe(reply.buffer);
  });

  test('an unaligned run is copied, with the same values', () => {
    const odd = Buffer.concat([Buffer.alloc(1), reply]).subarray(1);
    const v = u32View(odd, 8, 4);
    expect([...v]).toEqual([...words]);
    expect(v.buffer).not.toBe(odd.buffer);
  });

  test('a table running past the end of the reply is refused, not truncated', () => {
    expect(() => u32View(reply, 8, 5)).toThrow(/5 u32 at 8 past the end \(24 bytes\)/);
  });
});
