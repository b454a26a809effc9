/**
 * The times a leader stamped into its records (ramp `sinceMs`, earlier tables' `untilMs`) are wall-clock times:
 * every node reads them, and a successor goes on from them. But the wall clock steps (NTP, an operator): read
 * against a clock stepped an hour forward, a table recorded seconds ago was an hour old and dropped, a ramp at 20 %
 * was over. So the leader remembers, for each time it stamped or took over, the wall clock's offset from steady
 * time (clock.monoMs()) then; when the offset has moved since, the wall clock stepped by that much, and the time is
 * moved with it (written back in the new wall time): what it stamped ages on steady time, whatever the wall clock
 * did. A time it has not held (another leader's, read at its election) has only the wall clock to go by
 * (slow-start.ts and history.ts say how far they trust it).
 */
import type { Clock } from '../clock.js';

/** A change of the wall clock's offset from steady time below this is jitter (ms rounding), not a step: 1 s. */
export const WALL_STEP_MIN_MS = 1_000;

/**
 * How the leader holds a stored time: the wall clock's step since it stamped or took over `atMs` for `key`, ms
 * (+: forward; 0: none), or undefined when it never held it (another leader's).
 */
export type HeldStep = (key: string, atMs: number) => number | undefined;

/** Every stored time taken as held with no step: the wall clock alone (the pure steps' default). */
export const WALL_CLOCK_ONLY: HeldStep = () => 0;

/**
 * Versions of one key's times kept: a shifted time is held beside the one it replaced, so a late echo of the
 * record from before the shift (setDecided / setHistory) is still known as this leader's, not taken over again.
 */
const VERSIONS_PER_KEY = 16;

/** The steps as of one reading of the wall clock, with its offset from steady time then (`offsetMs`). */
export type HeldSteps = HeldStep & { readonly offsetMs: number };

export interface OwnStamps {
  /** The step of each time held, as of the wall clock now: call once per computation, as it reads its now. */
  steps(): HeldSteps;
  /**
   * After a write (or when nothing needed writing): the times the leader holds now, in the wall time of `asOf` (the
   * steps the computation that made them read); keys not named are forgotten. Not the offset at the call: a step
   * of the wall clock while the write was in etcd (seconds, at times) was then never applied, and a ramp begun in
   * that write ended at once, a table it replaced was dropped at the next recompute. Taken as of `asOf`, the step
   * shows at the next steps() and moves them.
   */
  hold(stamps: Iterable<readonly [key: string, atMs: number]>, asOf: { readonly offsetMs: number }): void;
  /** A new term: nothing is held (what etcd has is taken over again). */
  clear(): void;
}

/** The wall clock's offset from steady time: constant but for steps. */
export const wallOffsetMs = (clock: Clock): number => clock.now() - clock.monoMs();

export function createOwnStamps(clock: Clock): OwnStamps {
  /** key -> atMs -> the wall offset when it was stamped or taken over. */
  let held = new Map<string, Map<number, number>>();
  return {
    steps() {
      const offsetMs = wallOffsetMs(clock);
      const step: HeldStep = (key, atMs) => {
        const then = held.get(key)?.get(atMs);
        if (then === undefined) return undefined;
        const stepMs = offsetMs - then;
        return Math.abs(stepMs) < WALL_STEP_MIN_MS ? 0 : Math.round(stepMs);
      };
      return Object.assign(step, { offsetMs });
    },
    hold(stamps, { offsetMs }) {
      const next = new Map<string, Map<number, number>>();
      for (const [key, atMs] of stamps) {
        let versions = next.get(key);
        if (!versions) next.set(key, (versions = new Map(held.get(key))));
        // Held before, unshifted (any step under WALL_STEP_MIN_MS): its offset stays, so small steps add up.
        const thenMs = versions.get(atMs) ?? offsetMs;
        versions.delete(atMs);
        versions.set(atMs, thenMs); // the times held now go last: older versions are dropped first
      }
      for (const versions of next.values()) {
        while (versions.size > VERSIONS_PER_KEY) versions.delete(versions.keys().next().value as number);
      }
      held = next;
    },
    clear() {
      held = new Map();
    },
  };
}

/**
 * The wall clock's step since the last call, ms (0: none, or under WALL_STEP_MIN_MS): for the log, when the held
 * times move (`wallClockStepped`).
 */
export function createWallSteps(clock: Clock): () => number {
  let seenMs = wallOffsetMs(clock);
  return () => {
    const offsetMs = wallOffsetMs(clock);
    const stepMs = offsetMs - seenMs;
    seenMs = offsetMs;
    return Math.abs(stepMs) < WALL_STEP_MIN_MS ? 0 : Math.round(stepMs);
  };
}
