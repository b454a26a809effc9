/** Waiting, bounded in time and in count. */
import { ProcessError } from './errors.js';

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Polls `check` until it returns a value (not undefined) or `timeoutMs` passes; a check that throws is tried
 * again (its last error is the TIMEOUT's cause). `giveUp` ends the wait early with its reason, e.g. when the
 * daemon being waited for has exited. The deadline is on a steady clock (performance.now()): on the wall clock an NTP
 * step forward ended the wait at once with a false TIMEOUT.
 */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs: number,
  intervalMs = 200,
  giveUp?: () => string | undefined,
): Promise<T> {
  const deadlineMs = performance.now() + timeoutMs;
  let last: unknown;
  for (let i = 0; i < Math.ceil(timeoutMs / intervalMs) + 1; i++) {
    const reason = giveUp?.();
    if (reason !== undefined) throw new ProcessError('COMMAND_FAILED', `${what}: ${reason}`, { cause: last });
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (performance.now() >= deadlineMs) break;
    await sleep(intervalMs);
  }
  const why = last instanceof Error ? `: ${last.message}` : '';
  throw new ProcessError('TIMEOUT', `${what} not ready within ${timeoutMs} ms${why}`, { cause: last });
}
