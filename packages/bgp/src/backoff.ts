/** Exponential reconnect backoff with jitter, so a fleet of agents does not hit restarted sidecars in step. */

export interface BackoffOptions {
  /** First delay, ms; default 100. */
  initialMs?: number;
  /** Largest delay, ms; default 5_000 (the agent should be back within a BGP hold time or two). */
  maxMs?: number;
  /** Random spread, a fraction of the delay; default 0.2 (±20 %). */
  jitter?: number;
  random?: () => number;
}

export const DEFAULT_BACKOFF_INITIAL_MS = 100;
export const DEFAULT_BACKOFF_MAX_MS = 5_000;

export class Backoff {
  private attempt = 0;
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly jitter: number;
  private readonly random: () => number;

  constructor(opts: BackoffOptions = {}) {
    this.initialMs = opts.initialMs ?? DEFAULT_BACKOFF_INITIAL_MS;
    this.maxMs = opts.maxMs ?? DEFAULT_BACKOFF_MAX_MS;
    this.jitter = opts.jitter ?? 0.2;
    this.random = opts.random ?? Math.random;
  }

  /** Delay before the next attempt, ms. */
  next(): number {
    const base = Math.min(this.maxMs, this.initialMs * 2 ** this.attempt);
    this.attempt = Math.min(this.attempt + 1, 30);
    return Math.round(base * (1 + this.jitter * (2 * this.random() - 1)));
  }

  reset(): void {
    this.attempt = 0;
  }
}
