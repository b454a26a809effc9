/**
 * The page's writes, with the same store calls as the CLI (packages/cli/src/commands/member.ts): a node drain is
 * the operator's drain flag (setNodeDrain; the node withdraws its VIPs from BGP and keeps forwarding existing
 * flows), a member drain or enable is @l4fleet/store editPoolMembers (a read-modify-write of the fleet guarded by
 * the revision read, retried on a concurrent change), a VIP disable, drain or enable is editVip with `withVipState`
 * (as `l4fleet vip disable|drain|enable`). Every action is put into the timeline, refused ones too.
 */
import {
  type MemberState,
  type Pool,
  parseVipKey,
  predictChurn,
  type VipChurn,
  type VipState,
  vipKey,
  withVipState,
} from '@l4fleet/config';
import { editPoolMembers, editVip, type FleetStore } from '@l4fleet/store';
import { DashboardError } from './errors.js';
import type { Timeline } from './timeline.js';

/**
 * Refused writes recorded one by one in a minute; past that they are counted and summed up in one entry when the
 * minute ends, so a flood of refused requests cannot push the fleet's own events and actions off the timeline.
 */
export const REFUSED_RECORDED_PER_MINUTE = 10;
const REFUSED_WINDOW_MS = 60_000;
/** Sources named in the summary of refused writes (the rest as `…`). */
const REFUSED_SOURCES_NAMED = 5;
/** A refused write's target is the URL's, as sent: longer than this, it is cut. */
export const TARGET_MAX_CHARS = 120;

const boundedTarget = (t: string): string =>
  t.length > TARGET_MAX_CHARS ? `${t.slice(0, TARGET_MAX_CHARS)}… (${t.length} characters)` : t;

export type MemberAction = 'drain' | 'enable';
const MEMBER_STATE: Readonly<Record<MemberAction, MemberState>> = { drain: 'draining', enable: 'active' };
export type VipAction = 'disable' | 'drain' | 'enable';
const VIP_STATE: Readonly<Record<VipAction, VipState>> = { disable: 'disabled', drain: 'draining', enable: 'enabled' };

export interface ActionResult {
  readonly action: string;
  readonly target: string;
  /** Desired-state revision written (member edits), absent for node drains. */
  readonly revision?: number;
  /** Member edits: per VIP, the share of table slots (new flows) that move, as `l4fleet member` prints it. */
  readonly churn?: readonly { readonly vip: string; readonly fraction: number }[];
}

interface Written {
  readonly revision: number;
  readonly churn: readonly VipChurn[];
}

export interface Actions {
  setNodeDrain(node: string, drained: boolean, who: string): Promise<ActionResult>;
  setMemberState(pool: string, member: string, action: MemberAction, who: string): Promise<ActionResult>;
  /** `vips[].state` of the VIP `key` (ADDR:PORT/PROTO), as `l4fleet vip disable|drain|enable` writes it. */
  setVipState(key: string, action: VipAction, who: string): Promise<ActionResult>;
  /**
   * Records a write refused before it reached the store (no token, wrong token): REFUSED_RECORDED_PER_MINUTE one by
   * one, the rest of that minute in one entry when it ends.
   */
  refused(action: string, target: string, reason: string, who: string): void;
  /** Stops the timer of a pending summary of refused writes. */
  close(): void;
}

export function createActions(store: FleetStore, timeline: Timeline, now: () => Date = () => new Date()): Actions {
  const record = (data: Record<string, unknown>) =>
    timeline.add({ at: now().toISOString(), kind: 'action', node: 'dashboard', data });

  // The minute of refused writes under way: when it began, how many were recorded, and those only counted. The minute
  // is timed on performance.now() (steady: on the wall clock an NTP step back opened no new minute for the step's
  // length); `startedAt` is the wall-clock time the summary shows.
  const refusals = {
    startMs: Number.NEGATIVE_INFINITY,
    startedAt: '',
    recorded: 0,
    more: 0,
    sources: new Set<string>(),
    timer: undefined as NodeJS.Timeout | undefined,
  };
  const summarise = () => {
    clearTimeout(refusals.timer);
    refusals.timer = undefined;
    if (refusals.more === 0) return;
    const named = [...refusals.sources].slice(0, REFUSED_SOURCES_NAMED);
    const from = `${named.join(', ')}${refusals.sources.size > named.length ? ', …' : ''}`;
    const count = refusals.more;
    record({
      action: 'writes',
      target: '',
      result: 'refused',
      from,
      count,
      error: `and ${count} more refused from ${refusals.startedAt} (at most ${REFUSED_RECORDED_PER_MINUTE} a minute are recorded one by one)`,
    });
    refusals.more = 0;
    refusals.sources.clear();
  };

  const run = async (
    action: string,
    target: string,
    who: string,
    fn: () => Promise<Written | undefined>,
  ): Promise<ActionResult> => {
    try {
      const written = await fn();
      const extra = written
        ? { revision: written.revision, churn: written.churn.map((c) => ({ vip: c.vip, fraction: c.fraction })) }
        : {};
      record({ action, target, result: 'ok', from: who, ...extra });
      return { action, target, ...extra };
    } catch (err) {
      record({ action, target, result: 'failed', from: who, error: (err as Error).message });
      throw err;
    }
  };

  return {
    async setNodeDrain(node, drained, who) {
      const action = drained ? 'node drain' : 'node undrain';
      return await run(action, node, who, async () => {
        const known = (await store.listNodes()).some((n) => n.name === node);
        if (!known) throw new DashboardError('NOT_FOUND', `node "${node}": not registered and has no drain flag`);
        await store.setNodeDrain(node, drained);
        return undefined;
      });
    },
    async setMemberState(poolName, memberName, action, who) {
      const state = MEMBER_STATE[action];
      return await run(`member ${action}`, `${poolName}/${memberName}`, who, async () => {
        const edit = (pool: Pool) => {
          const member = pool.members.find((m) => m.name === memberName);
          if (!member) throw new DashboardError('NOT_FOUND', `member ${poolName}/${memberName}: no such member`);
          if (member.state === state) return { unchanged: `member ${poolName}/${memberName} is ${state} already` };
          return pool.members.map((m) => (m.name === memberName ? { ...m, state } : m));
        };
        const by = `dashboard, from ${who} (member ${action} ${poolName}/${memberName})`;
        const result = await editPoolMembers(store, poolName, edit, { by });
        // Already in that state: nothing written (no "no changes" revision in the history), and no table moves.
        if ('unchanged' in result) return undefined;
        return { revision: result.revision, churn: predictChurn(result.before, result.after, result.decided) };
      });
    },
    async setVipState(key, action, who) {
      return await run(`vip ${action}`, key, who, async () => {
        // A malformed key is a ConfigError naming it (400); a VIP not in the fleet editVip's NOT_FOUND (404).
        const wanted = vipKey(parseVipKey(key));
        const by = `dashboard, from ${who} (vip ${action} ${wanted})`;
        const result = await editVip(store, wanted, (vip) => withVipState(vip, VIP_STATE[action]), { by });
        // Already in that state: nothing written, and no table moves.
        if ('unchanged' in result) return undefined;
        return { revision: result.revision, churn: [] };
      });
    },
    refused(action, target, reason, who) {
      const t = performance.now();
      if (t - refusals.startMs >= REFUSED_WINDOW_MS) {
        summarise();
        refusals.startMs = t;
        refusals.startedAt = now().toISOString();
        refusals.recorded = 0;
      }
      if (refusals.recorded < REFUSED_RECORDED_PER_MINUTE) {
        refusals.recorded++;
        record({ action, target: boundedTarget(target), result: 'refused', from: who, error: reason });
        return;
      }
      refusals.more++;
      refusals.sources.add(who);
      refusals.timer ??= setTimeout(summarise, refusals.startMs + REFUSED_WINDOW_MS - t);
      refusals.timer.unref();
    },
    close() {
      clearTimeout(refusals.timer);
      refusals.timer = undefined;
    },
  };
}
