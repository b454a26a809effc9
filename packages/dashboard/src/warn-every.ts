/**
 * A warning that can repeat at every rebuild (a view that cannot be built or sent fails again at each etcd change) is
 * logged at most once per interval, per event, so a broken view does not flood the log; the next one says how many
 * were held back meanwhile (logged at debug).
 */
import type { Logger } from 'pino';

/** How often one failing event is logged at warn. */
export const WARN_EVERY_MS = 60_000;

export type WarnEvery = (event: string, err: unknown) => void;

/** `monoMs`: steady time (a wall clock stepping back would silence the warnings). */
export function warnEvery(logger: Logger, monoMs: () => number, everyMs = WARN_EVERY_MS): WarnEvery {
  const last = new Map<string, { atMs: number; heldBack: number }>();
  return (event, err) => {
    const message = err instanceof Error ? err.message : String(err);
    const now = monoMs();
    const seen = last.get(event);
    if (seen !== undefined && now - seen.atMs < everyMs) {
      seen.heldBack++;
      logger.debug({ event, err: message });
      return;
    }
    logger.warn({ event, err: message, heldBack: seen?.heldBack ?? 0 });
    last.set(event, { atMs: now, heldBack: 0 });
  };
}
