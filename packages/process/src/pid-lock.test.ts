import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import {
  acquirePidLock,
  PidLockTimeoutError,
  ProcessError,
  pidStartTime,
  readPidLockHolder,
  tryTakePidLock,
} from './index.js';

/** Run before the real call (then cleared), to interleave other takers inside one taker's steps. */
const hooks: {
  rename?: ((from: string, to: string) => Promise<void>) | undefined;
  link?: ((from: string, to: string) => Promise<void>) | undefined;
} = {};

vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>();
  return {
    ...real,
    rename: async (from: string, to: string) => {
      await hooks.rename?.(from, to);
      return real.rename(from, to);
    },
    link: async (from: string, to: string) => {
      await hooks.link?.(from, to);
      return real.link(from, to);
    },
  };
});

describe('pid lock - a lock file naming its holder by pid and start time', () => {
  let dir: string;
  let path: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'l4f-pid-lock-'));
    path = join(dir, 'sub', 'x.lock');
  });
  afterEach(() => {
    hooks.rename = undefined;
    hooks.link = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

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

  test('pid lock - three takers racing on a stale lock: exactly one takes it, and the file names that one', async () => {
    await tryTakePidLock(path, 'first');
    writeFileSync(path, JSON.stringify({ pid: spawnSync('true').pid, command: 'old' }));
    // B reads the stale holder; A runs inside B's first rename of the lock (bounded: a taker serialised behind B
    // cannot end before B does); C inside the first link onto the lock after that.
    let a: Promise<unknown> | undefined;
    let c: Promise<unknown> | undefined;
    hooks.rename = async (from) => {
      if (from !== path) return;
      hooks.rename = undefined;
      a = tryTakePidLock(path, 'a');
      await Promise.race([a, new Promise((r) => setTimeout(r, 500))]);
      hooks.link = async (_, to) => {
        if (to !== path) return;
        hooks.link = undefined;
        c = tryTakePidLock(path, 'c');
        await c;
      };
    };
    const b = await tryTakePidLock(path, 'b');
    const outcomes = { a: await a, b, c: await c } as Record<string, { outcome: string } | undefined>;
    const takers = Object.keys(outcomes).filter((k) => outcomes[k]?.outcome === 'taken');
    expect(takers).toHaveLength(1);
    expect(await readPidLockHolder(path)).toMatchObject({ command: takers[0] });
    expect(readdirSync(join(dir, 'sub'))).toEqual(['x.lock']);
  });

  test('pid lock - a takeover guard left by a taker that died is stale: the stale lock is still taken over', async () => {
    await tryTakePidLock(path, 'first');
    const dead = JSON.stringify({ pid: spawnSync('true').pid, command: 'old' });
    writeFileSync(path, dead);
    writeFileSync(`${path}.takeover`, dead);
    expect(await tryTakePidLock(path, 'next')).toEqual({ outcome: 'taken', createdDir: false });
    expect(await readPidLockHolder(path)).toMatchObject({ pid: process.pid, command: 'next' });
    expect(readdirSync(join(dir, 'sub'))).toEqual(['x.lock']);
  });

  test('pid lock - release removes the file only while it still names this process', async () => {
    const lock = await acquirePidLock(path, 'up');
    // Another (live) holder's file in its place, as after a wrong takeover: not ours to remove.
    const other = JSON.stringify({ pid: 1, start: pidStartTime(1), command: 'other' });
    writeFileSync(path, other);
    await lock.release();
    expect(readFileSync(path, 'utf8')).toBe(other);
    rmSync(path);
    await lock.release();
    const again = await acquirePidLock(path, 'again');
    await again.release();
    expect(await readPidLockHolder(path)).toBe('gone');
  });
});
