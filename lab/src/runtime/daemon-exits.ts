/**
 * The exits of the daemons this process started (netns runtime), so a wait for the lab (etcd answering, the router's
 * ECMP route, NATS) gives up as soon as a daemon it needs has died, naming its role, host, exit and log file, instead
 * of running to its timeout with only the step's name. Only this process's children are seen: `startDaemon`'s child
 * emits `exit` here as long as this process runs.
 */
import type { LabState } from './state.js';

/** A started daemon: its pid and its `exit` event (a ChildProcess). */
export interface WatchedChild {
  readonly pid: number;
  once(event: 'exit', listener: (code: number | null, signal: NodeJS.Signals | null) => void): unknown;
}

interface Exit {
  readonly host: string;
  readonly role: string;
  readonly pid: number;
  readonly how: string;
  readonly logFile: string;
}

export class DaemonExits {
  readonly #exits: Exit[] = [];

  /** Keeps `child`'s exit, as `host`'s daemon `role` writing to `logFile`. */
  watch(child: WatchedChild, host: string, role: string, logFile: string): void {
    const { pid } = child;
    child.once('exit', (code, signal) => {
      const how = code !== null ? `with code ${code}` : `by ${signal ?? 'an unknown signal'}`;
      this.#exits.push({ host, role, pid, how, logFile });
    });
  }

  /**
   * Why the lab cannot come up: the first daemon (of those `match` picks; default all) that exited while it was still
   * the lab's recorded process for its role and not killed on purpose (`lab kill`, `fail-backend`, an etcd member
   * stopped; a restart records a new pid); undefined when none did.
   */
  exited(
    state: Pick<LabState, 'pids' | 'killed'>,
    match: (host: string, role: string) => boolean = () => true,
  ): string | undefined {
    const e = this.#exits.find(
      (x) =>
        match(x.host, x.role) &&
        state.pids[x.host]?.[x.role] === x.pid &&
        !state.killed.includes(x.host) &&
        !state.killed.includes(x.role),
    );
    return e && `${e.role} of ${e.host} (pid ${e.pid}) exited ${e.how}; see ${e.logFile}`;
  }
}
