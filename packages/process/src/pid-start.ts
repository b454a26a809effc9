/**
 * A process's start time, to tell a recorded pid from a later process that got the same number (a pid is reused
 * once its process is gone): field 22 of /proc/PID/stat, clock ticks after boot (proc(5)). It does not change on
 * exec, so the pid `ip netns exec` returns and the daemon it execs have the same one.
 */
import { readFileSync } from 'node:fs';

/** The start time of `pid`; undefined when it does not run (or /proc cannot be read). */
export function pidStartTime(pid: number): string | undefined {
  try {
    // The command name (field 2) is in parentheses and may itself hold spaces and parentheses: count from the last
    // ')', after which field 3 is the first; field 22 is then the 20th.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}
