import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { DataPlaneError } from '../errors.js';
import type { Exec } from '../exec.js';
import { ensureBpffs } from './bpffs.js';

let dir: string | undefined;
const scratch = (): string => {
  dir = mkdtempSync(join(tmpdir(), 'l4f-bpffs-'));
  return dir;
};
/** An exec that records and answers like a mount that failed (nothing is mounted in a unit test). */
const fakeExec = () => vi.fn<Exec>(async () => ({ code: 32, stdout: '', stderr: 'mount: permission denied' }));

afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

async function refusal(p: Promise<unknown>): Promise<DataPlaneError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DataPlaneError);
  return err as DataPlaneError;
}

describe('bpffs - where a bpffs is mounted', () => {
  test.each(['/', '//', '/tmp/..'])(
    '%s is refused before any mount (a bpffs over / hides the whole filesystem)',
    async (path) => {
      const exec = fakeExec();
      const err = await refusal(ensureBpffs(path, exec));
      expect(err.code).toBe('OPTIONS_INVALID');
      expect(err.message).toContain(`bpffsPath: "${path}"`);
      expect(exec).not.toHaveBeenCalled();
    },
  );

  test('a non-empty directory that is not a bpffs is refused, naming the path: a mount would hide its files', async () => {
    const path = join(scratch(), 'data');
    mkdirSync(path);
    writeFileSync(join(path, 'keep.txt'), 'x');
    const exec = fakeExec();
    const err = await refusal(ensureBpffs(path, exec));
    expect(err.code).toBe('OPTIONS_INVALID');
    expect(err.message).toMatch(new RegExp(`bpffsPath: "${path}" is a non-empty directory \\(keep\\.txt\\)`));
    expect(exec).not.toHaveBeenCalled();
  });

  test.each([
    ['an empty directory', (base: string) => mkdirSync(join(base, 'bpf'))],
    ['a path that does not exist yet', () => {}],
  ])('%s is mounted over (the mount failing here is reported as such)', async (_, make) => {
    const base = scratch();
    make(base);
    const path = join(base, 'bpf');
    const exec = fakeExec();
    const err = await refusal(ensureBpffs(path, exec));
    expect(err.code).toBe('BPF_FAILED');
    expect(err.message).toContain('mount: permission denied');
    expect(exec).toHaveBeenCalledWith(['mount', '-t', 'bpf', 'bpf', path]);
  });
});
