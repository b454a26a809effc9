import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { readBounded } from './bounded-read.js';

const dir = mkdtempSync(join(tmpdir(), 'l4fleet-bounded-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('cli bounded read - never more than the bound', () => {
  test('a file within the bound is read whole', () => {
    const f = join(dir, 'ok');
    writeFileSync(f, 'pools: []\n');
    expect(readBounded(f, 10)).toEqual({ text: 'pools: []\n' });
  });

  test('a regular file over the bound is refused by its size (exact)', () => {
    const f = join(dir, 'big');
    writeFileSync(f, Buffer.alloc(4097));
    expect(readBounded(f, 4096)).toEqual({ tooLarge: 4097, exact: true });
  });

  test('/dev/zero stops one byte past the bound', () => {
    expect(readBounded('/dev/zero', 3 * 1024 * 1024)).toEqual({ tooLarge: 3 * 1024 * 1024 + 1, exact: false });
  });

  test('a directory is an error, not an empty fleet', () => {
    expect(() => readBounded(dir, 10)).toThrow(/directory/);
  });
});
