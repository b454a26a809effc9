import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { createExec } from './exec.js';

/** `count` pieces of `size` characters, made one at a time as the pipe takes them. */
function* pieces(count: number, size: number, failAt = -1): Generator<string> {
  for (let i = 0; i < count; i++) {
    if (i === failAt) throw new RangeError('Invalid string length');
    yield 'x'.repeat(size - 1) + '\n';
  }
}

describe('exec - streamed input', () => {
  const exec = createExec();

  test('exec - pieces reach the program in order, through a pipe far smaller than their sum', async () => {
    const r = await exec(['sh', '-c', 'wc -c; echo done >&2'], pieces(256, 65_536));
    expect(r).toEqual({ code: 0, stdout: `${256 * 65_536}\n`, stderr: 'done\n' });
  });

  test('exec - a string input is still written whole', async () => {
    expect((await exec(['cat'], 'add table netdev t\n')).stdout).toBe('add table netdev t\n');
  });

  test('exec - a failure while making the input kills the program before its stdin closes', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'l4fleet-exec-'));
    try {
      // Given the end of its input, `wc -c` would write a count: a script runner (nft -f -) would run the part it got.
      const out = join(dir, 'count');
      const err = await exec(['sh', '-c', `exec wc -c > ${out}`], pieces(64, 65_536, 40)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RangeError);
      expect(await readFile(out, 'utf8')).toBe('');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('exec - a program that exits without reading its input is answered with its exit code', async () => {
    const r = await exec(['sh', '-c', 'echo refused >&2; exit 3'], pieces(64, 65_536));
    expect(r).toMatchObject({ code: 3, stderr: 'refused\n' });
  });

  test('exec - a program that cannot start is a ProcessError naming it', async () => {
    const err = await exec(['/nonexistent/l4fleet-nft'], pieces(1, 10)).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'ProcessError', code: 'NOT_STARTED' });
    expect(String(err)).toContain('/nonexistent/l4fleet-nft');
  });
});
