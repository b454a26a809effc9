/**
 * One `backend setup`, `teardown` or `status` at a time per network namespace. Each reads the host, then changes it
 * from what it read; two at once (a manual setup during `systemctl reload l4fleet-backend`) would each undo or
 * overwrite the other's changes, and one could report success for a host the other has just torn down.
 *
 * A lock file beside the record, @l4fleet/process's pid lock (link(2) of a fully written temporary file holding the
 * holder's pid, start time and command; see pid-lock.ts there for why not flock(2)), taken without waiting: a second
 * command fails at once naming the first. A holder that died (SIGKILL, a crash) leaves the file: it is stale when its
 * pid no longer runs, or runs with another start time (the pid was reused; the file is in /run, so a reboot clears it
 * anyway), and is taken over.
 */
import { rmdir } from 'node:fs/promises';
import {
  type PidLockAttempt,
  type PidLockHolder,
  ProcessError,
  releasePidLock,
  tryTakePidLock,
} from '@l4fleet/process';
import { DataPlaneError } from '../errors.js';

export type BackendCommand = 'setup' | 'teardown' | 'status';

export interface BackendLock {
  readonly path: string;
  /** The state directory did not exist: the lock made it (setup records this; release removes it when empty). */
  readonly createdDir: boolean;
  /** Removes the lock (if it still names this process), then the directory when the lock made it or `removeDir` (and nothing else is in it). */
  release(removeDir?: boolean): Promise<void>;
}

/** `<stateDir>/backend-net<inode>.lock` beside `<stateDir>/backend-net<inode>.json`. */
export function lockPath(recordPath: string): string {
  return recordPath.replace(/\.json$/, '.lock');
}

const busy = (path: string, h: PidLockHolder): DataPlaneError =>
  new DataPlaneError(
    'BACKEND_HOST_UNSUITABLE',
    `${path}: another backend ${h.command} runs (pid ${h.pid}); wait for it to end (remove the file only if ` +
      `pid ${h.pid} is not l4fleet)`,
  );

/** Takes the lock at `path` for `command`, or throws naming the holder's pid; a stale lock is taken over. */
export async function acquireLock(path: string, command: BackendCommand): Promise<BackendLock> {
  let attempt: PidLockAttempt;
  try {
    attempt = await tryTakePidLock(path, command);
  } catch (err) {
    if (err instanceof ProcessError && err.code === 'LOCK_UNREADABLE') {
      throw new DataPlaneError('BACKEND_HOST_UNSUITABLE', `${path}: unreadable lock`, { cause: err.cause });
    }
    throw new DataPlaneError('BACKEND_HOST_UNSUITABLE', `${path}: cannot take the lock: ${(err as Error).message}`, {
      cause: err,
    });
  }
  if (attempt.outcome === 'held') throw busy(path, attempt.holder);
  if (attempt.outcome === 'contended') {
    throw new DataPlaneError('BACKEND_HOST_UNSUITABLE', `${path}: could not take the lock (others keep taking it)`);
  }
  const { createdDir } = attempt;
  const dir = path.slice(0, path.lastIndexOf('/'));
  return {
    path,
    createdDir,
    release: async (removeDir = false) => {
      // Only while the file still names this process: one a stale-lock takeover gave another holder stays theirs.
      await releasePidLock(path);
      if (createdDir || removeDir) await rmdir(dir).catch(() => undefined);
    },
  };
}
