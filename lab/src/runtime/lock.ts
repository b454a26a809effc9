/**
 * One command at a time changes a lab. Every `lab` command is its own process that reads state.json, works for
 * seconds or minutes, and writes its whole copy back: two at once (`add-node` while `kill node1` runs, two `up`s)
 * would each overwrite the other's changes, or one would remove the lab the other is building as stale.
 *
 * The lock is `<state root>/<id>.lock`, beside the lab's directory (which `down` removes), made as the data plane's
 * backend lock is (packages/dataplane/src/backend/lock.ts): link(2) of a fully written temporary file holding the
 * holder's pid, start time and command, so the file exists only with its holder in it and two can never both make
 * it. A holder that died (SIGKILL, a crash) leaves the file; it is stale once its pid no longer runs, or runs with
 * another start time (reused), and is taken over. A second command waits for the lock a bounded time, then fails
 * naming the holder. Within one process (tests drive Lab directly) callers queue, and a locked operation that calls
 * another runs it under the lock it already holds.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';
import { link, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sleep } from '@l4fleet/process';
import type { Logger } from 'pino';
import { LabError } from '../errors.js';
import { processStartTime } from './proc-start.js';
import { stateRoot } from './state.js';

/** How long a command waits for another's lock (`up` with its 60 s readiness wait fits). */
export const DEFAULT_LAB_LOCK_WAIT_MS = 180_000;
const POLL_MS = 200;

export interface LabLockOptions {
  /** How long to wait for another command's lock; default DEFAULT_LAB_LOCK_WAIT_MS. */
  readonly waitMs?: number | undefined;
  readonly log?: Logger | undefined;
}

interface Holder {
  readonly pid: number;
  /** Field 22 of /proc/PID/stat; absent where /proc cannot be read. */
  readonly start?: string;
  readonly command: string;
}

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

function running(h: Holder): boolean {
  try {
    process.kill(h.pid, 0);
  } catch (err) {
    // EPERM: the process exists, owned by another user.
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const start = processStartTime(h.pid);
  return h.start === undefined || start === undefined || start === h.start;
}

/** The holder written in `path`; undefined when it holds none (stale too), 'gone' when the file is. */
async function holderIn(path: string): Promise<Holder | undefined | 'gone'> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'gone';
    throw err;
  }
  try {
    const h = JSON.parse(text) as Holder;
    return Number.isSafeInteger(h.pid) && h.pid > 0 ? h : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Takes the lock, waiting while a live holder has it; returns its release. The wait runs on a steady clock
 * (performance.now()): on the wall clock an NTP step back made it last the step's length more, a step forward ended it
 * at once.
 */
async function acquire(path: string, command: string, options: LabLockOptions): Promise<() => Promise<void>> {
  const waitMs = options.waitMs ?? DEFAULT_LAB_LOCK_WAIT_MS;
  const deadlineMs = performance.now() + waitMs;
  let told = false;
  for (;;) {
    let holder: Holder | undefined;
    try {
      holder = await tryTake(path, command);
    } catch (err) {
      throw new LabError('COMMAND_FAILED', `${path}: cannot take the lab lock: ${(err as Error).message}`, {
        cause: err,
      });
    }
    if (holder === undefined) return () => rm(path, { force: true });
    if (performance.now() >= deadlineMs) {
      throw new LabError(
        'TIMEOUT',
        `${path}: another lab command ("${holder.command}", pid ${holder.pid}) still changes the lab after ${waitMs} ms; ` +
          `wait for it to end (remove the file only if pid ${holder.pid} is not l4fleet-lab)`,
      );
    }
    if (!told) {
      told = true;
      options.log?.info(
        { event: 'labLockWait', path, holderPid: holder.pid, holderCommand: holder.command },
        'waiting for another lab command to end',
      );
    }
    await sleep(Math.min(POLL_MS, Math.max(1, deadlineMs - performance.now())));
  }
}

/** One try: undefined once the lock is ours, else its live holder. A stale lock is taken over. */
async function tryTake(path: string, command: string): Promise<Holder | undefined> {
  await mkdir(stateRoot(), { recursive: true, mode: 0o755 });
  const start = processStartTime(process.pid);
  const me: Holder = { pid: process.pid, command, ...(start === undefined ? {} : { start }) };
  const unique = () => `${path}.${process.pid}.${randomBytes(4).toString('hex')}`;
  for (let attempt = 0; attempt < 3; attempt++) {
    const tmp = unique();
    await writeFile(tmp, `${JSON.stringify(me)}\n`, { mode: 0o644, flag: 'wx' });
    try {
      await link(tmp, path);
      return undefined;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    } finally {
      await rm(tmp, { force: true });
    }
    const holder = await holderIn(path);
    if (holder === 'gone') continue;
    if (holder && running(holder)) return holder;
    // Stale. Moved aside first: of several finding it stale, one moves it; a mover that finds it moved a live lock
    // (taken between its read and its rename) puts it back and waits.
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
      return moved;
    }
    await rm(aside, { force: true });
  }
  // Others keep taking and dropping it: count it as held by them for this round.
  const holder = await holderIn(path);
  return holder !== 'gone' && holder !== undefined ? holder : { pid: 0, command: 'unknown' };
}
