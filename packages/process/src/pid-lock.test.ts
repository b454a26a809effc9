import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import {
  acquirePidLock,
  PidLockTimeoutError,
  ProcessError,
  pidStartTime,
  readPidLockHolder,
  tryTakePidLock,
} from './index.js';

describe('pid lock - a lock file naming its holder by pid and start time', () => {
  let dir: string;
  let path: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'l4f-pid-lock-'));
    path = join(dir, 'sub', 'x.lock');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test('pid lock - pidStartTime: field 22 of /proc/PID/stat for a running pid, undefined for a gone one', () => {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    expect(pidStartTime(process.pid)).toBe(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
    expect(pidStartTime(process.pid)).toMatch(/^\d+$/);
    expect(pidStartTime(spawnSync('true').pid)).toBeUndefined();
  });

  test('pid lock - two acquirers: the second finds the first as holder until it releases', async () => {
    const first = await tryTakePidLock(path, 'up');
    expect(first).toEqual({ outcome: 'taken', createdDir: true });
    expect(await readPidLockHolder(path)).toEqual({
      pid: process.pid,
      start: pidStartTime(process.pid),
      command: 'up',
    });
    const second = await tryTakePidLock(path, 'down');
    expect(second).toEqual({
      outcome: 'held',
      holder: { pid: process.pid, start: pidStartTime(process.pid), command: 'up' },
    });
    const lock = await acquirePidLock(path, 'kill', { waitMs: 0 }).catch((e: unknown) => e);
    expect(lock).toBeInstanceOf(PidLockTimeoutError);
    const released = await acquirePidLock(join(dir, 'y.lock'), 'y');
    await released.release();
    expect(existsSync(join(dir, 'y.lock'))).toBe(false);
    // No temporary files are left beside the lock.
    expect(readdirSync(join(dir, 'sub'))).toEqual(['x.lock']);
  });

  test('pid lock - a waiting acquirer takes the lock once the holder releases it', async () => {
    const held = await acquirePidLock(path, 'up');
    expect(held.createdDir).toBe(true);
    const waits: unknown[] = [];
    const next = acquirePidLock(path, 'down', { waitMs: 5_000, pollMs: 10, onWait: (h) => waits.push(h) });
    setTimeout(() => void held.release(), 50);
    const lock = await next;
    expect(waits).toEqual([{ pid: process.pid, start: pidStartTime(process.pid), command: 'up' }]);
    expect(await readPidLockHolder(path)).toMatchObject({ command: 'down' });
    await lock.release();
    expect(await readPidLockHolder(path)).toBe('gone');
  });

  test.each([
    ['a holder whose pid no longer runs', () => ({ pid: spawnSync('true').pid, command: 'up' })],
    ['a reused pid (it runs with another start time)', () => ({ pid: 1, start: '1', command: 'up' })],
    ['a file holding no holder', () => 'x'],
  ])('pid lock - %s is stale: taken over', async (_, holder) => {
    await tryTakePidLock(path, 'first');
    writeFileSync(path, JSON.stringify(holder()));
    expect(await tryTakePidLock(path, 'next')).toEqual({ outcome: 'taken', createdDir: false });
    expect(await readPidLockHolder(path)).toMatchObject({ pid: process.pid, command: 'next' });
  });

  test('pid lock - a live holder: the wait ends after waitMs with a TIMEOUT naming its pid and command', async () => {
    await tryTakePidLock(path, 'setup');
    writeFileSync(path, JSON.stringify({ pid: 1, start: pidStartTime(1), command: 'up' }));
    const err = await acquirePidLock(path, 'down', { waitMs: 100, pollMs: 10 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProcessError);
    expect(err).toMatchObject({
      name: 'ProcessError',
      code: 'TIMEOUT',
      waitMs: 100,
      holder: { pid: 1, command: 'up' },
    });
    expect((err as Error).message).toBe(
      `${path}: held by pid 1 ("up") after 100 ms; remove the file only if pid 1 is not the command it names`,
    );
    expect(await readPidLockHolder(path)).toMatchObject({ pid: 1 });
  });

  test('pid lock - an unreadable lock file is a LOCK_UNREADABLE ProcessError naming the path, its cause kept', async () => {
    await tryTakePidLock(path, 'up');
    rmSync(path);
    // A directory in its place: reading it fails with EISDIR.
    mkdirSync(path);
    const err = await readPidLockHolder(path).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'ProcessError', code: 'LOCK_UNREADABLE', message: `${path}: unreadable lock` });
    expect((err as Error).cause).toMatchObject({ code: 'EISDIR' });
  });
});
