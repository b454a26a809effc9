import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pidStartTime } from '@l4fleet/process';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { acquireLock } from './lock.js';

describe('backend lock - release', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'l4f-backend-lock-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test('backend lock - release removes the file while it names this process', async () => {
    const path = join(dir, 'backend-net1.lock');
    const lock = await acquireLock(path, 'setup');
    expect(JSON.parse(readFileSync(path, 'utf8'))).toMatchObject({ pid: process.pid, command: 'setup' });
    await lock.release();
    expect(() => readFileSync(path)).toThrow(/ENOENT/);
  });

  test('backend lock - a file that names another live holder (ours was taken over as stale) stays theirs', async () => {
    const path = join(dir, 'backend-net1.lock');
    const lock = await acquireLock(path, 'setup');
    // pid 1 runs for the whole test: a live holder another command wrote after a takeover.
    const other = JSON.stringify({ pid: 1, start: pidStartTime(1), command: 'teardown' });
    writeFileSync(path, other);
    await lock.release();
    expect(readFileSync(path, 'utf8')).toBe(other);
  });
});
