import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { readBackendObject } from './bpf.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function scratch(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'l4fleet-bpf-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

describe('backend object', () => {
  test('backend object - a missing object says to build it with clang', async () => {
    const path = join(await scratch(), 'backend.bpf.o');
    await expect(readBackendObject(path)).rejects.toThrow(
      `bpf object ${path}: missing (build @l4fleet/dataplane with clang`,
    );
  });

  test('backend object - an object that cannot be read names the path and the errno, not clang', async () => {
    const path = await scratch(); // a directory: EISDIR
    const read = readBackendObject(path);
    await expect(read).rejects.toThrow(`bpf object ${path}: cannot be read: EISDIR`);
    await expect(read).rejects.not.toThrow('clang');
  });
});
