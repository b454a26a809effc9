/**
 * Settings the bench changes on the host (kernel.bpf_stats_enabled=1 for the program's own run time) and must put
 * back. A `finally` restores them on the normal path; an interrupt (interrupt.ts) exits without running any
 * `finally`, so it writes back whatever is still pending here. Pure: the writer is passed in (a test records it).
 */

/** Writes one sysctl; may throw (the others are still restored). */
export type SysctlWriter = (name: string, value: string) => void;

export interface Restorer {
  /** Registers `before` as the value to put back in `sysctl`; the returned function does it now, once. */
  restoreOnInterrupt(sysctl: string, before: string): () => void;
  /** Writes back every value still pending, newest first (nested changes end at the first value), once each. */
  restoreAll(): void;
}

export function createRestorer(
  write: SysctlWriter,
  report: (msg: string, err: unknown) => void = (msg, err) => console.error(msg, err),
): Restorer {
  const pending: { sysctl: string; before: string }[] = [];
  const restoreOne = (entry: { sysctl: string; before: string }): void => {
    const i = pending.indexOf(entry);
    if (i < 0) return;
    pending.splice(i, 1);
    try {
      write(entry.sysctl, entry.before);
    } catch (err) {
      report(`bench: could not restore ${entry.sysctl}=${entry.before}:`, err);
    }
  };
  return {
    restoreOnInterrupt(sysctl, before) {
      const entry = { sysctl, before };
      pending.push(entry);
      return () => restoreOne(entry);
    },
    restoreAll() {
      for (const entry of [...pending].reverse()) restoreOne(entry);
    },
  };
}
