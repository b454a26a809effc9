/** Finding and ending processes by pid and by network namespace, so a crashed run leaves nothing behind. */
import { readFileSync } from 'node:fs';
import { ProcessError } from './errors.js';
import { run } from './run.js';
import { sleep } from './wait.js';

/** Pids of every process whose network namespace is `namespace` (`ip netns pids`); none if it does not exist. */
export async function namespacePids(namespace: string): Promise<number[]> {
  const r = await run(['ip', 'netns', 'pids', namespace], { allowFailure: true, timeoutMs: 10_000 });
  if (r.code !== 0) return [];
  return r.stdout
    .split(/\s+/)
    .filter((s) => /^\d+$/.test(s))
    .map(Number);
}

/**
 * Sends `sig` to `pid`; one that is already gone (ESRCH) is not an error. Any other failure throws a ProcessError
 * SIGNAL_FAILED naming the pid, the signal and the error (cause kept): EPERM means the process runs, as another user
 * (kill(2)), and taking it for gone would leave it running unnoticed.
 */
export function signal(pid: number, sig: NodeJS.Signals): void {
  requirePid(pid, sig);
  try {
    process.kill(pid, sig);
  } catch (err) {
    if (errnoOf(err) === 'ESRCH') return;
    const code = errnoOf(err);
    const why = code === 'EPERM' ? 'EPERM (it runs, as a user this process may not signal)' : (code ?? String(err));
    throw new ProcessError('SIGNAL_FAILED', `kill ${sig} pid ${pid}: ${why}`, { cause: err });
  }
}

/**
 * SIGKILLs `pids` and waits (at most `timeoutMs`) until none is alive any more. Returns the ones that still are: pids
 * that may not be signalled (EPERM) and ones that outlived the wait (a process in D state ends only when the kernel
 * call it waits on returns); empty when all went.
 */
export async function killAll(pids: readonly number[], timeoutMs = 5_000): Promise<number[]> {
  for (const pid of pids) requirePid(pid, 'SIGKILL');
  const refused: number[] = [];
  const signalled: number[] = [];
  for (const pid of pids) {
    try {
      signal(pid, 'SIGKILL');
      signalled.push(pid);
    } catch {
      refused.push(pid); // SIGNAL_FAILED (EPERM): it runs, and no signal of ours reached it, so it is not waited for
    }
  }
  // performance.now(), a steady clock: on the wall clock an NTP step back stretched the wait by the step's length.
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline && signalled.some(isAlive)) await sleep(50);
  const survivors = new Set([...refused, ...signalled.filter(isAlive)]);
  return pids.filter((pid) => survivors.has(pid));
}

/**
 * Whether `pid` runs; a zombie (exited, not yet reaped) does not. EPERM from kill 0 is a process that runs as another
 * user (kill(2)): alive. Only ESRCH is gone; another error throws a ProcessError SIGNAL_FAILED.
 */
export function isAlive(pid: number): boolean {
  requirePid(pid, 0);
  try {
    process.kill(pid, 0);
  } catch (err) {
    const code = errnoOf(err);
    if (code === 'ESRCH') return false;
    if (code !== 'EPERM') {
      throw new ProcessError('SIGNAL_FAILED', `kill 0 pid ${pid}: ${code ?? String(err)}`, { cause: err });
    }
  }
  // A zombie still answers kill 0; /proc tells it apart.
  return !isZombie(pid);
}

/** kill(2) with pid 0 or a negative one signals a whole process group (the caller's own, for 0): never meant here. */
function requirePid(pid: number, sig: NodeJS.Signals | 0): void {
  if (!Number.isSafeInteger(pid) || pid <= 0) {
    throw new ProcessError(
      'SIGNAL_FAILED',
      `kill ${sig} pid ${pid}: pid ${pid} is not a process id (a positive integer; kill(2) takes 0 and negative pids for process groups)`,
    );
  }
}

function errnoOf(err: unknown): string | undefined {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}
