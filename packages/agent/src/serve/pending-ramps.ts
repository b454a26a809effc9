/**
 * The node's side of slow start for members the operator starts (set `active`, or added to a pool): the fleet
 * change reaches every node a few milliseconds before the aggregator's ramp does (it writes the ramp when it sees
 * the same change), and in between a node would build the member's whole weight and place new flows on it, which
 * then stay there by flow affinity (measured in test/slow-start.int.test.ts: one whole-weight table before the
 * ramp). So a node that sees such a member start holds it at the first step (RAMP_PERCENTS[0]), the step the
 * aggregator will write, until the decided records name the member's ramp or PENDING_RAMP_MS passes (no
 * aggregator wrote one: the member then has its whole weight). Every node sees the same fleet change, so all hold
 * the same table; when the ramp arrives nothing changes. A member decided up after down needs none of this: its
 * decision and its ramp are one write.
 */
import { type Fleet, type MemberRamp, type MemberRamps, RAMP_PERCENTS, startedMembers } from '@l4fleet/config';
import type { Clock } from '../clock.js';

/** How long a node holds a started member at the first step while the aggregator's ramp has not come, ms. */
export const PENDING_RAMP_MS = 5_000;

export interface PendingRamps {
  /** The desired fleet changed from `before` (undefined at a start: nothing is held) to `after`. */
  fleetChanged(before: Fleet | undefined, after: Fleet): void;
  /** The decided ramps arrived: a held member they name is theirs from now on. */
  decided(ramps: MemberRamps): void;
  /** `decided` with the held members at the first step. */
  merged(decided: MemberRamps): MemberRamps;
  close(): void;
}

export function createPendingRamps(opts: {
  readonly clock: Clock;
  /** A held member was let go after PENDING_RAMP_MS: plan the tables again. */
  readonly onExpired: () => void;
  readonly pendingMs?: number;
}): PendingRamps {
  const pendingMs = opts.pendingMs ?? PENDING_RAMP_MS;
  /** memberKey -> when it is let go, on the steady clock (a wall-clock step must not stretch the hold), ms. */
  const held = new Map<string, number>();
  const first: MemberRamp = { percent: RAMP_PERCENTS[0] as number, sinceMs: 0 };
  /** The decided ramps last seen: the aggregator may have written a member's ramp before this node saw the fleet. */
  let lastDecided: MemberRamps = new Map();
  let timer: unknown;

  const arm = (): void => {
    opts.clock.clearTimeout(timer);
    timer = undefined;
    if (held.size === 0) return;
    const next = Math.min(...held.values());
    timer = opts.clock.setTimeout(
      () => {
        timer = undefined;
        const now = opts.clock.monoMs();
        let expired = false;
        for (const [k, until] of held) {
          if (until <= now) {
            held.delete(k);
            expired = true;
          }
        }
        arm();
        if (expired) opts.onExpired();
      },
      Math.max(0, next - opts.clock.monoMs()),
    );
  };

  return {
    fleetChanged(before, after) {
      const stillActive = new Set<string>();
      for (const p of after.pools)
        for (const m of p.members) if (m.state === 'active') stillActive.add(`${p.name}/${m.name}`);
      for (const k of held.keys()) if (!stillActive.has(k)) held.delete(k);
      if (before) {
        for (const k of startedMembers(before, after))
          if (!lastDecided.has(k)) held.set(k, opts.clock.monoMs() + pendingMs);
      }
      arm();
    },
    decided(ramps) {
      lastDecided = ramps;
      let changed = false;
      for (const k of ramps.keys()) changed = held.delete(k) || changed;
      if (changed) arm();
    },
    merged(decided) {
      if (held.size === 0) return decided;
      const out = new Map(decided);
      for (const k of held.keys()) if (!out.has(k)) out.set(k, first);
      return out;
    },
    close() {
      opts.clock.clearTimeout(timer);
      held.clear();
    },
  };
}
