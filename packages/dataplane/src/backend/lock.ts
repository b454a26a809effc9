/**
 * One `backend setup`, `teardown` or `status` at a time per network namespace. Each reads the host, then changes it
 * from what it read; two at once (a manual setup during `systemctl reload l4fleet-backend`) would each undo or
 * overwrite the other's changes, and one could report success for a host the other has just torn down.
 *
 * A lock file beside the record, made by link(2) of a fully written temporary file (so it exists only with its
 * holder in it, and two can never both make it), holding the holder's pid and its start time. Not flock(2): Node
 * has none, and holding one through a helper process (`flock FILE cat`) adds a process to keep and reap for a
 * one-shot command. A holder that died (SIGKILL, a crash) leaves the file: it is stale when its pid no longer runs,
 * or runs with another start time (the pid was reused; the file is in /run, so a reboot clears it anyway).
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { link, mkdir, readFile, rename, rm, rmdir, writeFile } from 'node:fs/promises';
import { DataPlaneError } from '../errors.js';

export type BackendCommand = 'setup' | 'teardown' | 'status';

interface Holder {
  readonly pid: number;
  /** Field 22 of /proc/PID/stat (clock ticks after boot); absent where /proc cannot be read. */
  readonly start?: string;
  readonly command: string;
}

export interface BackendLock {
  readonly path: string;
  /** The state directory did not exist: the lock made it (setup records this; release removes it when empty). */
  readonly createdDir: boolean;
  /** Removes the lock, then the directory when the lock made it or `removeDir` (and nothing else is in it). */
  release(removeDir?: boolean): Promise<void>;
}

/** `<stateDir>/backend-net<inode>.lock` beside `<stateDir>/backend-net<inode>.json`. */
export function lockPath(recordPath: string): string {
  return recordPath.replace(/\.json$/, '.lock');
}

function startTime(pid: number): string | undefined {
  try {
    // The command name (field 2) is in parentheses and may itself hold spaces and parentheses.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function running(h: Holder): boolean {
  try {
    process.kill(h.pid, 0);
  } catch (err) {
    // EPERM: the process exists, owned by another user.
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const start = startTime(h.pid);
  return h.start === undefined || start === undefined || start === h.start;
}

/** The holder written in `path`; undefined when the file is gone, or holds no holder (then it is stale too). */
async function holderIn(path: string): Promise<Holder | undefined | 'gone'> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'gone';
    throw new DataPlaneError('BACKEND_HOST_UNSUITABLE', `${path}: unreadable lock`, { cause: err });
  }
  try {
    const h = JSON.parse(text) as Holder;
    return Number.isSafeInteger(h.pid) && h.pid > 0 ? h : undefined;
  } catch {
    return undefined;
  }
}

const busy = (path: string, h: Holder): DataPlaneError =>
  new DataPlaneError(
    'BACKEND_HOST_UNSUITABLE',
    `${path}: another backend ${h.command} runs (pid ${h.pid}); wait for it to end (remove the file only if ` +
      `pid ${h.pid} is not l4fleet)`,
  );

/** Takes the lock at `path` for `command`, or throws naming the holder's pid; a stale lock is taken over. */
export async function acquireLock(path: string, command: BackendCommand): Promise<BackendLock> {
  try {
    return await take(path, command);
  } catch (err) {
    if (err instanceof DataPlaneError) throw err;
    throw new DataPlaneError('BACKEND_HOST_UNSUITABLE', `${path}: cannot take the lock: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

async function take(path: string, command: BackendCommand): Promise<BackendLock> {
  const dir = path.slice(0, path.lastIndexOf('/'));
  const createdDir = (await mkdir(dir, { recursive: true, mode: 0o755 })) !== undefined;
  const start = startTime(process.pid);
  const me: Holder = { pid: process.pid, command, ...(start === undefined ? {} : { start }) };
  const unique = () => `${path}.${process.pid}.${randomBytes(4).toString('hex')}`;
  for (let attempt = 0; attempt < 3; attempt++) {
    const tmp = unique();
    await writeFile(tmp, `${JSON.stringify(me)}\n`, { mode: 0o644, flag: 'wx' });
    try {
      await link(tmp, path);
      return {
        path,
        createdDir,
        release: async (removeDir = false) => {
          await rm(path, { force: true });
          if (createdDir || removeDir) await rmdir(dir).catch(() => undefined);
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    } finally {
      await rm(tmp, { force: true });
    }
    const holder = await holderIn(path);
    if (holder === 'gone') continue;
    if (holder && running(holder)) throw busy(path, holder);
    // Stale. Move it aside first: of several processes finding it stale, one moves it; a mover that finds it
    // moved a live lock (taken between its read and its rename) puts it back and gives way.
    const aside = unique();
    try {
      await rename(path, aside);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    const moved = await holderIn(aside);
    if (moved !== 'gone' && moved && running(moved)) {
      await link(aside, path).catch(() => undefined);
      await rm(aside, { force: true });
      throw busy(path, moved);
    }
    await rm(aside, { force: true });
  }
  throw new DataPlaneError('BACKEND_HOST_UNSUITABLE', `${path}: could not take the lock (others keep taking it)`);
}
