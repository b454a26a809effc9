/**
 * Time, injected so tests can drive timers: every timer and timeout of the agent goes through a Clock. The system
 * clock is the default; createManualClock() is the fake beside it (time moves only when a test advances it).
 *
 * A Clock has two readings. now() is the wall clock: the time written out, in records other nodes read, files a
 * restart reads, logs. It steps whenever NTP or an operator sets it, by an hour if need be, so a duration measured
 * on it is wrong by the step (a 5 s hold lasting an hour). monoMs() is steady (performance.now()): it never steps,
 * like the timers themselves, so every duration and deadline local to this process is measured on it.
 */
import { AgentError } from './errors.js';

export interface Clock {
  /** Wall-clock time, ms since the epoch: for times written out. Can step either way; never a duration's measure. */
  now(): number;
  /** Steady time, ms since an arbitrary origin: for durations and local deadlines. Meaningless outside this process. */
  monoMs(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  monoMs: () => performance.now(),
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

/** A clock whose time moves only in advance() (the wall clock alone also in stepWall()): the fake for unit tests. */
export interface ManualClock extends Clock {
  /**
   * Moves time forward by `ms`, firing the timers that fall due in time order (ties in the order they were set);
   * pending promise callbacks run before each timer and at the end, so chains of awaits settle as they would.
   */
  advance(ms: number): Promise<void>;
  /**
   * Steps the wall clock (now()) by `ms`, either way, as NTP or an operator would: steady time (monoMs()) and the
   * timers do not move.
   */
  stepWall(ms: number): void;
  /** Timers set and not yet fired or cleared. */
  readonly pending: number;
}

/** Timers one advance() fires at most: a timer that re-arms itself at 0 ms must not spin forever. */
const MAX_TIMERS_PER_ADVANCE = 100_000;

/** `startMs`: the wall clock's first reading. Steady time starts at 0 (an origin of its own, as performance.now()). */
export function createManualClock(startMs = 0): ManualClock {
  /** Steady time: what advance() moves and what timers fall due on. */
  let nowMs = 0;
  /** Wall clock minus steady time: what stepWall() moves. */
  let wallOffsetMs = startMs;
  let nextId = 0;
  const timers = new Map<number, { atMs: number; fn: () => void }>();
  // setImmediate runs after every queued promise callback: what a real timer tick would have let run first.
  const settle = () => new Promise<void>((resolve) => setImmediate(resolve));
  return {
    now: () => nowMs + wallOffsetMs,
    monoMs: () => nowMs,
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
    stepWall(ms) {
      wallOffsetMs += ms;
    },
    get pending() {
      return timers.size;
    },
  };
}
