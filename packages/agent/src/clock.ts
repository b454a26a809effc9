/**
 * Time, injected so tests can drive timers: every timer and timeout of the agent goes through a Clock. The system
 * clock is the default; createManualClock() is the fake beside it (time moves only when a test advances it).
 */
import { AgentError } from './errors.js';

export interface Clock {
  /** ms since the epoch. */
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

/** Resolves after `ms` on `clock`. */
export function sleep(clock: Clock, ms: number): Promise<void> {
  return new Promise((resolve) => clock.setTimeout(resolve, ms));
}

/** `p`, or AgentError TIMEOUT once `ms` passed on `clock` (`what` names the call in the message). */
export function withTimeout<T>(clock: Clock, p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = clock.setTimeout(() => reject(new AgentError('TIMEOUT', `${what}: no answer within ${ms} ms`)), ms);
    p.then(
      (v) => {
        clock.clearTimeout(t);
        resolve(v);
      },
      (err: unknown) => {
        clock.clearTimeout(t);
        reject(err);
      },
    );
  });
}

/** A clock whose time moves only in advance(): the fake for unit tests. */
export interface ManualClock extends Clock {
  /**
   * Moves time forward by `ms`, firing the timers that fall due in time order (ties in the order they were set);
   * pending promise callbacks run before each timer and at the end, so chains of awaits settle as they would.
   */
  advance(ms: number): Promise<void>;
  /** Timers set and not yet fired or cleared. */
  readonly pending: number;
}

/** Timers one advance() fires at most: a timer that re-arms itself at 0 ms must not spin forever. */
const MAX_TIMERS_PER_ADVANCE = 100_000;

export function createManualClock(startMs = 0): ManualClock {
  let nowMs = startMs;
  let nextId = 0;
  const timers = new Map<number, { atMs: number; fn: () => void }>();
  // setImmediate runs after every queued promise callback: what a real timer tick would have let run first.
  const settle = () => new Promise<void>((resolve) => setImmediate(resolve));
  return {
    now: () => nowMs,
    setTimeout(fn, ms) {
      nextId += 1;
      timers.set(nextId, { atMs: nowMs + Math.max(0, ms), fn });
      return nextId;
    },
    clearTimeout(handle) {
      if (typeof handle === 'number') timers.delete(handle);
    },
    async advance(ms) {
      const endMs = nowMs + ms;
      for (let fired = 0; fired < MAX_TIMERS_PER_ADVANCE; fired++) {
        await settle();
        let due: [number, { atMs: number; fn: () => void }] | undefined;
        for (const e of timers) if (e[1].atMs <= endMs && (!due || e[1].atMs < due[1].atMs)) due = e;
        if (!due) break;
        timers.delete(due[0]);
        nowMs = Math.max(nowMs, due[1].atMs);
        due[1].fn();
      }
      nowMs = endMs;
      await settle();
    },
    get pending() {
      return timers.size;
    },
  };
}
