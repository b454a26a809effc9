/**
 * A `decided/<pool>` record the store refuses keeps its last good value in a running watch (store prefix-cache.ts,
 * `keep-last-good`), but on a node's first read there is none to keep: the pool would arrive with no decisions, and
 * a member with no decision counts as up (config table.ts), so members the fleet decided down would take slots on
 * this node only (a record from a newer aggregator, say a member state this version cannot decode). The state file
 * holds this node's last good decisions: for each pool the store reports refused with none served (DecidedState
 * `refusedPools`), the file's stand in. They stop when the key holds a record this node reads, even one with no
 * member (what every node reading it holds: no decision), or is deleted. Without them the pool keeps no decisions,
 * as before, and an error log says so (docs/design/0002 "Records a node cannot read").
 */
import type { MemberRamp, MemberStatus } from '@l4fleet/config';
import { type DecidedState, keys } from '@l4fleet/store';
import type { Logger } from 'pino';
import type { LastStateStore } from '../persist/last-state.js';

export interface DecidedFallback {
  /** Reads the state file's decisions; call once, before the decided watch starts. Never throws. */
  load(): Promise<void>;
  /** `d`, with each pool it reports refused (`refusedPools`) taken from the state file when it has them. */
  fill(d: DecidedState): DecidedState;
}

const inPool = (pool: string, memberKey: string): boolean => memberKey.startsWith(`${pool}/`);

export function createDecidedFallback(file: LastStateStore | undefined, log: Logger): DecidedFallback {
  let saved: { decided: ReadonlyMap<string, MemberStatus>; ramps: ReadonlyMap<string, MemberRamp> } | undefined;
  /** Why the file has no decisions to give (set by load()). */
  let missing = 'no state file';
  /** What was last said about each pool refused in the last state: said again only when it changes. */
  const said = new Map<string, 'file' | 'unknown'>();

  return {
    async load() {
      if (!file) return;
      try {
        const s = await file.load();
        if (!s) {
          missing = `no state file at ${file.path}`;
          return;
        }
        saved = { decided: s.decided, ramps: s.ramps ?? new Map() };
      } catch (err) {
        missing = `state file not usable: ${(err as Error).message}`;
      }
    },
    fill(d) {
      const refused = d.refusedPools ?? new Set<string>();
      for (const pool of [...said.keys()]) {
        if (refused.has(pool)) continue;
        // etcd's decisions are served again: a record this node reads (maybe with no member), or none at all.
        said.delete(pool);
        log.info({ event: d.pools?.has(pool) ? 'decidedPoolReadable' : 'decidedPoolDeleted', pool });
      }
      if (refused.size === 0) return d;
      const decided = new Map(d.decided);
      const ramps = new Map(d.ramps);
      for (const pool of refused) {
        const own = [...(saved?.decided ?? [])].filter(([k]) => inPool(pool, k));
        if (own.length > 0) {
          for (const [k, s] of own) decided.set(k, s);
          for (const [k, r] of saved?.ramps ?? []) if (inPool(pool, k) && decided.get(k) === 'up') ramps.set(k, r);
          if (said.get(pool) !== 'file') {
            said.set(pool, 'file');
            log.warn({
              event: 'decidedFromStateFile',
              pool,
              key: keys.decidedPool(pool),
              members: own.length,
              effect: 'the state file decisions serve until the key holds a record this node can read, or is deleted',
            });
          }
        } else if (said.get(pool) !== 'unknown') {
          said.set(pool, 'unknown');
          log.error({
            event: 'decidedPoolUnknown',
            pool,
            key: keys.decidedPool(pool),
            reason: saved ? 'the state file has no decisions for the pool' : missing,
            effect: 'no decisions for the pool: its members count as up on this node until a record it can read comes',
          });
        }
      }
      return { ...d, decided, ramps };
    },
  };
}
