/**
 * Ending a command with everything it started. A timed-out `sh -ec` script's current command (a wedged `ip` or
 * `nft`) is the shell's child: killing the shell alone leaves it running, re-parented to init, still holding
 * whatever it holds. Without process groups (run() keeps its children in the caller's group, so a Ctrl-C still
 * reaches them) the tree is read from /proc: this kernel has no /proc/PID/task/TID/children.
 */
import { readdirSync, readFileSync } from 'node:fs';

/** Parent pid of each process now running, from /proc/PID/stat (field 4, after the command name in parentheses). */
function parents(): Map<number, number> {
  const out = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (Number.isInteger(ppid)) out.set(Number(name), ppid);
    } catch {
      // ended while we read: not a descendant any more
    }
  }
  return out;
}

/** Pids of every descendant of `pid` now running (children, then theirs). */
export function descendantsOf(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const [child, parent] of parents()) children.set(parent, [...(children.get(parent) ?? []), child]);
  const out: number[] = [];
  const queue = [pid];
  // Bounded by the process count: a pid is queued once, as the child of one parent.
  for (let at = queue.shift(); at !== undefined; at = queue.shift()) {
    for (const c of children.get(at) ?? []) {
      out.push(c);
      queue.push(c);
    }
  }
  return out;
}

function send(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/**
 * SIGKILLs `pid` and its descendants. The tree is frozen first (SIGSTOP) and read again, so a process forked while
 * it was read is killed too; the stopped ones then die with SIGKILL, which a stopped process still takes.
 */
export function killTree(pid: number): void {
  send(pid, 'SIGSTOP');
  const first = descendantsOf(pid);
  for (const d of first) send(d, 'SIGSTOP');
  const all = new Set([...first, ...descendantsOf(pid)]);
  send(pid, 'SIGKILL');
  for (const d of all) send(d, 'SIGKILL');
}
