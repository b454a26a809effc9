import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import { LabError } from '../errors.js';
import { labLockPath, withLabLock } from './lock.js';

describe('lab lock - one command at a time changes a lab', () => {
  let dir: string;
  const saved = process.env.L4FLEET_LAB_STATE_DIR;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'l4f-lab-lock-'));
    process.env.L4FLEET_LAB_STATE_DIR = dir;
  });
  afterEach(() => {
    if (saved === undefined) delete process.env.L4FLEET_LAB_STATE_DIR;
    else process.env.L4FLEET_LAB_STATE_DIR = saved;
    rmSync(dir, { recursive: true, force: true });
  });

  test('lab lock - held beside the lab dir while the command runs, removed after, also when it fails', async () => {
    const path = labLockPath('a1');
    expect(path).toBe(join(dir, 'a1.lock'));
    await withLabLock('a1', 'kill node1', async () => {
      expect(JSON.parse(readFileSync(path, 'utf8'))).toMatchObject({ pid: process.pid, command: 'kill node1' });
    });
    expect(existsSync(path)).toBe(false);
    await expect(withLabLock('a1', 'up', async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(existsSync(path)).toBe(false);
  });

  test('lab lock - a live holder: the command waits, then fails naming its pid and command', async () => {
    const start = readFileSync('/proc/1/stat', 'utf8').split(') ')[1]?.split(' ')[19];
    writeFileSync(labLockPath('a1'), JSON.stringify({ pid: 1, start, command: 'up' }));
    let ran = false;
    const err = await withLabLock(
      'a1',
      'add-node',
      async () => {
        ran = true;
      },
      { waitMs: 300 },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LabError);
    expect((err as LabError).code).toBe('TIMEOUT');
    expect((err as Error).message).toMatch(/another lab command \("up", pid 1\) still changes the lab after 300 ms/);
    expect(ran).toBe(false);
    // Another lab's lock is another file.
    await withLabLock('a2', 'up', async () => undefined, { waitMs: 300 });
  });

  test('lab lock - the wall clock stepped back an hour while waiting: the wait still ends after waitMs', async () => {
    const start = readFileSync('/proc/1/stat', 'utf8').split(') ')[1]?.split(' ')[19];
    writeFileSync(labLockPath('a1'), JSON.stringify({ pid: 1, start, command: 'up' }));
    // NTP steps Date an hour back once the wait has begun (Date only: timers and performance.now() go on).
    const realNow = Date.now.bind(Date);
    let calls = 0;
    const now = vi.spyOn(Date, 'now').mockImplementation(() => (++calls === 1 ? realNow() : realNow() - 3_600_000));
    try {
      const err = await withLabLock('a1', 'add-node', async () => undefined, { waitMs: 300 }).catch((e: unknown) => e);
      expect((err as LabError).code).toBe('TIMEOUT');
    } finally {
      now.mockRestore();
    }
  }, 5_000);

  test('lab lock - a dead holder (crashed command) or a reused pid: the lock is taken over', async () => {
    const gone = spawnSync('true').pid;
    writeFileSync(labLockPath('a1'), JSON.stringify({ pid: gone, command: 'up' }));
    expect(await withLabLock('a1', 'down', async () => 'ran', { waitMs: 300 })).toBe('ran');
    // pid 1 runs, but not with this start time: not the process that took the lock.
    writeFileSync(labLockPath('a1'), JSON.stringify({ pid: 1, start: '1', command: 'up' }));
    expect(await withLabLock('a1', 'down', async () => 'ran', { waitMs: 300 })).toBe('ran');
  });

  test('lab lock - in one process commands queue, and a locked one calling another does not wait for itself', async () => {
    const order: string[] = [];
    const slow = withLabLock('a1', 'kill node1', async () => {
      order.push('kill start');
      await new Promise((r) => setTimeout(r, 50));
      // Nested: runs under the lock already held.
      await withLabLock('a1', 'stop etcd', async () => order.push('nested'), { waitMs: 100 });
      order.push('kill end');
    });
    const next = withLabLock('a1', 'restart node1', async () => order.push('restart'), { waitMs: 100 });
    await Promise.all([slow, next]);
    expect(order).toEqual(['kill start', 'nested', 'kill end', 'restart']);
  });
});
