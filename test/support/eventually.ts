/**
 * Polls `fn` until `ok` accepts its value, or fails after `timeoutMs` naming `what`, the last value and the last
 * error. The one bounded wait loop of the real-daemon tests (daemons converge, they do not answer at once).
 */
export async function eventually<T>(
  what: string,
  fn: () => Promise<T> | T,
  ok: (v: T) => boolean,
  timeoutMs = 20_000,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  let lastErr: unknown;
  while (Date.now() < deadline) {
    try {
      last = await fn();
      if (ok(last)) return last;
    } catch (err) {
      lastErr = err; // the daemon is not answering yet
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`${what}: not within ${timeoutMs} ms; last ${JSON.stringify(last)} ${String(lastErr ?? '')}`);
}

/** eventually() for a truthy value, which it returns. */
export async function until<T>(
  what: string,
  fn: () => Promise<T> | T,
  timeoutMs = 20_000,
  intervalMs = 50,
): Promise<NonNullable<T>> {
  return (await eventually(what, fn, (v) => Boolean(v), timeoutMs, intervalMs)) as NonNullable<T>;
}
