/** Finding and ending processes by pid and by network namespace, so a crashed run leaves nothing behind. */
import { readFileSync } from 'node:fs';
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

/** Sends `sig` to `pid`; one that is already gone is not an error. */
export function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/** SIGKILLs `pids` and waits (at most `timeoutMs`) until none is alive any more. */
export async function killAll(pids: readonly number[], timeoutMs = 5_000): Promise<void> {
  for (const pid of pids) signal(pid, 'SIGKILL');
  // performance.now(), a steady clock: on the wall clock an NTP step back stretched the wait by the step's length.
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline && pids.some(isAlive)) await sleep(50);
}

/** Whether `pid` runs; a zombie (exited, not yet reaped) does not. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    // A zombie still answers kill 0; /proc tells it apart.
    return !isZombie(pid);
  } catch {
    return false;
  }
}

function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}
