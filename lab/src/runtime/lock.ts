/**
 * One command at a time changes a lab. Every `lab` command is its own process that reads state.json, works for
 * seconds or minutes, and writes its whole copy back: two at once (`add-node` while `kill node1` runs, two `up`s)
 * would each overwrite the other's changes, or one would remove the lab the other is building as stale.
 *
 * The lock is `<state root>/<id>.lock`, beside the lab's directory (which `down` removes), @l4fleet/process's pid
 * lock as the data plane's backend lock is: link(2) of a fully written temporary file holding the holder's pid, start
 * time and command, so the file exists only with its holder in it and two can never both make it. A holder that died
 * (SIGKILL, a crash) leaves the file; it is stale once its pid no longer runs, or runs with another start time
 * (reused), and is taken over. A second command waits for the lock a bounded time, then fails naming the holder.
 * Within one process (tests drive Lab directly) callers queue, and a locked operation that calls another runs it
 * under the lock it already holds.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { join } from 'node:path';
import { acquirePidLock, type PidLockHolder, PidLockTimeoutError, ProcessError } from '@l4fleet/process';
import type { Logger } from 'pino';
import { LabError } from '../errors.js';
import { stateRoot } from './state.js';

/** How long a command waits for another's lock (`up` with its 60 s readiness wait fits). */
export const DEFAULT_LAB_LOCK_WAIT_MS = 180_000;
const POLL_MS = 200;

export interface LabLockOptions {
  /** How long to wait for another command's lock; default DEFAULT_LAB_LOCK_WAIT_MS. */
  readonly waitMs?: number | undefined;
  readonly log?: Logger | undefined;
}

/** Named while others keep taking and dropping the lock, so no one holder could be read. */
const UNKNOWN_HOLDER: PidLockHolder = { pid: 0, command: 'unknown' };

export function labLockPath(id: string): string {
  return join(stateRoot(), `${id}.lock`);
}

/** Lock paths this async context holds: a locked operation calling another must not wait for itself. */
const held = new AsyncLocalStorage<ReadonlySet<string>>();
/** The tail of each lock's queue in this process. */
const queues = new Map<string, Promise<unknown>>();

/** Runs `fn` holding lab `id`'s lock for `command` (`up`, `kill node1`, ...); see the module comment. */
export async function withLabLock<T>(
  id: string,
  command: string,
  fn: () => Promise<T>,
  options: LabLockOptions = {},
): Promise<T> {
  const path = labLockPath(id);
  const mine = held.getStore();
  if (mine?.has(path)) return fn();
  const before = queues.get(path) ?? Promise.resolve();
  const turn = before.then(async () => {
    const release = await acquire(path, command, options);
    try {
      return await held.run(new Set([...(mine ?? []), path]), fn);
    } finally {
      await release();
    }
  });
  const tail = turn.catch(() => undefined);
  queues.set(path, tail);
  void tail.then(() => {
    if (queues.get(path) === tail) queues.delete(path);
  });
  return turn;
}

/**
 * Takes the lock (making the state root, the lock's directory, if missing), waiting while a live holder has it;
 * returns its release. The wait (@l4fleet/process's pid lock) runs on a steady clock: on the wall clock an NTP step
 * back made it last the step's length more.
 */
async function acquire(path: string, command: string, options: LabLockOptions): Promise<() => Promise<void>> {
  const waitMs = options.waitMs ?? DEFAULT_LAB_LOCK_WAIT_MS;
  try {
    const lock = await acquirePidLock(path, command, {
      waitMs,
      pollMs: POLL_MS,
      onWait: (h) => {
        const holder = h ?? UNKNOWN_HOLDER;
        options.log?.info(
          { event: 'labLockWait', path, holderPid: holder.pid, holderCommand: holder.command },
          'waiting for another lab command to end',
        );
      },
    });
    return lock.release;
  } catch (err) {
    if (err instanceof PidLockTimeoutError) {
      const holder = err.holder ?? UNKNOWN_HOLDER;
      throw new LabError(
        'TIMEOUT',
        `${path}: another lab command ("${holder.command}", pid ${holder.pid}) still changes the lab after ${waitMs} ms; ` +
          `wait for it to end (remove the file only if pid ${holder.pid} is not l4fleet-lab)`,
      );
    }
    const cause = err instanceof ProcessError && err.code === 'LOCK_UNREADABLE' ? err.cause : err;
    throw new LabError('COMMAND_FAILED', `${path}: cannot take the lab lock: ${(cause as Error).message}`, { cause });
  }
}
