/**
 * A lock between processes that needs no daemon and survives its holder's death: a file made by link(2) of a fully
 * written temporary file (so it exists only with its holder in it, and two can never both make it), holding the
 * holder's pid, start time (pid-start.ts) and command. Not flock(2): Node has none, and holding one through a helper
 * process (`flock FILE cat`) adds a process to keep and reap. A holder that died (SIGKILL, a crash) leaves the file:
 * it is stale once its pid no longer runs, or runs with another start time (the pid was reused), and is taken over.
 *
 * Used by the data plane's backend lock (one `backend setup`/`teardown`/`status` per namespace, no waiting) and the
 * lab's (one command per lab, waiting a bounded time): each keeps its own errors and messages on top of this.
 */
import { randomBytes } from 'node:crypto';
import { link, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ProcessError } from './errors.js';
import { pidStartTime } from './pid-start.js';
import { sleep } from './wait.js';

/** What a lock file holds. */
export interface PidLockHolder {
  readonly pid: number;
  /** Field 22 of /proc/PID/stat (clock ticks after boot); absent where /proc cannot be read. */
  readonly start?: string;
  /** What the holder does (`setup`, `kill node1`), for the messages of those who find it held. */
  readonly command: string;
}

/** One try at a lock (tryTakePidLock). */
export type PidLockAttempt =
  /** Ours now; `createdDir`: its directory did not exist and this try made it. */
  | { readonly outcome: 'taken'; readonly createdDir: boolean }
  /** A live holder has it. */
  | { readonly outcome: 'held'; readonly holder: PidLockHolder }
  /** Others kept taking and dropping it through every retry; `holder` is the last one read, if any. */
  | { readonly outcome: 'contended'; readonly holder: PidLockHolder | undefined };

export interface PidLock {
  readonly path: string;
  /** The lock's directory did not exist: taking the lock made it. */
  readonly createdDir: boolean;
  /** Removes the lock file if it still names this process (releasePidLock); the directory stays. */
  release(): Promise<void>;
}

/** How often a waiting acquirer looks again, unless `pollMs` says otherwise. */
export const DEFAULT_PID_LOCK_POLL_MS = 200;

export interface PidLockOptions {
  /** How long to wait while another holds the lock, in ms; default 0 (one try, then the TIMEOUT). */
  readonly waitMs?: number | undefined;
  /** Interval between tries while waiting, in ms; default DEFAULT_PID_LOCK_POLL_MS. */
  readonly pollMs?: number | undefined;
  /** Called once, with the holder (undefined when others keep taking it), when the lock is found held. */
  readonly onWait?: ((holder: PidLockHolder | undefined) => void) | undefined;
}

/** The wait for a lock ended with another holding it: `holder` (undefined when others kept taking and dropping it). */
export class PidLockTimeoutError extends ProcessError {
  readonly path: string;
  readonly holder: PidLockHolder | undefined;
  readonly waitMs: number;

  constructor(path: string, holder: PidLockHolder | undefined, waitMs: number) {
    super(
      'TIMEOUT',
      holder === undefined
        ? `${path}: others kept taking the lock for ${waitMs} ms`
        : `${path}: held by pid ${holder.pid} ("${holder.command}") after ${waitMs} ms; remove the file only if ` +
            `pid ${holder.pid} is not the command it names`,
    );
    this.path = path;
    this.holder = holder;
    this.waitMs = waitMs;
  }
}

/** Whether `h` still runs: its pid exists and (where both are known) with the start time it wrote. */
export function pidLockHolderRuns(h: PidLockHolder): boolean {
  try {
    process.kill(h.pid, 0);
  } catch (err) {
    // EPERM: the process exists, owned by another user.
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const start = pidStartTime(h.pid);
  return h.start === undefined || start === undefined || start === h.start;
}

/**
 * The holder written in `path`: 'gone' when there is no file, undefined when it holds no holder (stale too).
 * Throws a ProcessError LOCK_UNREADABLE (cause: the read's error) when the file cannot be read.
 */
export async function readPidLockHolder(path: string): Promise<PidLockHolder | undefined | 'gone'> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'gone';
    throw new ProcessError('LOCK_UNREADABLE', `${path}: unreadable lock`, { cause: err });
  }
  try {
    const h = JSON.parse(text) as PidLockHolder;
    return Number.isSafeInteger(h.pid) && h.pid > 0 ? h : undefined;
  } catch {
    return undefined;
  }
}

/** How long a taker that found the lock stale waits for another's takeover of it to end, in ms. */
const TAKEOVER_WAIT_MS = 2_000;
/** Interval between looks at another's takeover guard, in ms (a takeover is a few file operations). */
const TAKEOVER_POLL_MS = 10;

/** Links a fully written temporary file holding `text` at `target`; false when `target` exists. */
async function linkNew(target: string, text: string, unique: () => string): Promise<boolean> {
  const tmp = unique();
  await writeFile(tmp, text, { mode: 0o644, flag: 'wx' });
  try {
    await link(tmp, target);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return false;
  } finally {
    await rm(tmp, { force: true });
  }
}

/**
 * Removes the stale file at `path`: moved aside first, and put back (given way to) when what was moved turns out to
 * run (taken between the caller's read and the move). Returns that live holder, or undefined when the stale file is
 * gone (or was gone already).
 */
async function removeStale(path: string, unique: () => string): Promise<PidLockHolder | undefined> {
  const aside = unique();
  try {
    await rename(path, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const moved = await readPidLockHolder(aside);
  if (moved !== 'gone' && moved && pidLockHolderRuns(moved)) {
    await link(aside, path).catch(() => undefined);
    await rm(aside, { force: true });
    return moved;
  }
  await rm(aside, { force: true });
  return undefined;
}

/**
 * Takes `guard`, the one-at-a-time right to take over the stale lock it guards, waiting TAKEOVER_WAIT_MS at most for a
 * live taker's takeover to end; false when it did not. A guard left by a taker that died in its takeover is stale
 * like a lock, and removed the same way (that removal is the one step left unguarded: it races only with another
 * taker dying inside its own takeover).
 */
async function takeGuard(guard: string, text: string, unique: () => string): Promise<boolean> {
  const deadlineMs = performance.now() + TAKEOVER_WAIT_MS;
  for (;;) {
    if (await linkNew(guard, text, unique)) return true;
    const holder = await readPidLockHolder(guard);
    const runs = holder !== 'gone' && holder !== undefined && pidLockHolderRuns(holder);
    if (holder !== 'gone' && !runs) await removeStale(guard, unique);
    if (performance.now() >= deadlineMs) return false;
    if (runs) await sleep(TAKEOVER_POLL_MS);
  }
}

/** Whether the file at `path` names this process (its pid and start time). */
async function namesMe(path: string): Promise<boolean> {
  const holder = await readPidLockHolder(path).catch(() => undefined);
  return (
    holder !== undefined &&
    holder !== 'gone' &&
    holder.pid === process.pid &&
    holder.start === pidStartTime(process.pid)
  );
}

/**
 * Removes the lock at `path` if it still names this process (pid and start time); a file naming another holder is
 * that holder's and stays (removing it by name would hand the lock to a third while the other still works under it).
 * Nothing is left to remove once it is gone. Safe against a holder changing between the read and the removal: a live
 * holder's file (ours) is never taken over.
 */
export async function releasePidLock(path: string): Promise<void> {
  if (await namesMe(path)) await rm(path, { force: true });
}

/**
 * One try at the lock at `path` for `command`, making its directory if missing; a stale lock is taken over. File
 * system errors other than the ones the scheme expects are thrown as they are (LOCK_UNREADABLE for a lock file that
 * cannot be read).
 *
 * Takeovers run one at a time, behind a guard file (`<path>.takeover`, made like the lock, stale like it): the check
 * "stale" and the removal are two steps, and with unguarded takeovers three takers could each act on what another had
 * just changed (B reads the stale holder; A takes it over and links its own; B moves A's live lock aside; C finds the
 * path free and takes it; B cannot put A's back): A and C both held it. Under the guard the stale file can change
 * only by a takeover (excluded) or a new taker's link (only once it is gone), so the re-read is still true at removal.
 */
export async function tryTakePidLock(path: string, command: string): Promise<PidLockAttempt> {
  const createdDir = (await mkdir(dirname(path), { recursive: true, mode: 0o755 })) !== undefined;
  const start = pidStartTime(process.pid);
  const me: PidLockHolder = { pid: process.pid, command, ...(start === undefined ? {} : { start }) };
  const text = `${JSON.stringify(me)}\n`;
  // Per-process random names: two takers never write the same temporary file.
  const unique = () => `${path}.${process.pid}.${randomBytes(4).toString('hex')}`;
  const guard = `${path}.takeover`;
  for (let attempt = 0; attempt < 3; attempt++) {
    if (await linkNew(path, text, unique)) return { outcome: 'taken', createdDir };
    const holder = await readPidLockHolder(path);
    if (holder === 'gone') continue;
    if (holder && pidLockHolderRuns(holder)) return { outcome: 'held', holder };
    if (!(await takeGuard(guard, text, unique))) continue;
    try {
      // Read again under the guard: another's takeover may have ended between the first read and the guard.
      const now = await readPidLockHolder(path);
      if (now === 'gone') continue;
      if (now && pidLockHolderRuns(now)) return { outcome: 'held', holder: now };
      const live = await removeStale(path, unique);
      if (live) return { outcome: 'held', holder: live };
    } finally {
      await releasePidLock(guard);
    }
  }
  const holder = await readPidLockHolder(path);
  return { outcome: 'contended', holder: holder === 'gone' ? undefined : holder };
}

/**
 * Takes the lock at `path` for `command`, waiting at most `waitMs` while another holds it, then throwing a
 * PidLockTimeoutError naming the holder. The wait runs on a steady clock (performance.now()): on the wall clock an
 * NTP step back made it last the step's length more, a step forward ended it at once.
 */
export async function acquirePidLock(path: string, command: string, options: PidLockOptions = {}): Promise<PidLock> {
  const waitMs = options.waitMs ?? 0;
  const pollMs = options.pollMs ?? DEFAULT_PID_LOCK_POLL_MS;
  const deadlineMs = performance.now() + waitMs;
  let told = false;
  for (;;) {
    const attempt = await tryTakePidLock(path, command);
    if (attempt.outcome === 'taken') {
      return { path, createdDir: attempt.createdDir, release: () => releasePidLock(path) };
    }
    if (performance.now() >= deadlineMs) throw new PidLockTimeoutError(path, attempt.holder, waitMs);
    if (!told) {
      told = true;
      options.onWait?.(attempt.holder);
    }
    await sleep(Math.min(pollMs, Math.max(1, deadlineMs - performance.now())));
  }
}
