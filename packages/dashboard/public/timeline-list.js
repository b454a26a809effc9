/**
 * The page's timeline list without the DOM (unit-tested in src/timeline-list.test.ts): which entries to add, which
 * to drop, and when to start over.
 * - Ids are the server process's own sequence (src/timeline.ts), from 1 in each process: `hello` names the process,
 *   and a page that reconnects to another one (the dashboard restarted) clears its list instead of skipping every
 *   id up to the old high mark.
 * - Unchanged health probes (one per probe per member per node, hidden unless asked for) have their own small limit,
 *   so they never push actions and withdrawals off the list.
 */

/** Entries other than unchanged probes kept on the page. */
export const TIMELINE_SHOWN = 200;
/** Unchanged probes kept on the page (shown with "show every health probe"). */
export const TIMELINE_PROBES = 50;

/** A health probe that changed nothing (the page hides these unless asked). */
export const isProbe = (e) => e.kind === 'member.health' && e.data.changed === false;

export function createTimelineList({ max = TIMELINE_SHOWN, maxProbes = TIMELINE_PROBES } = {}) {
  let instance;
  let last = 0;
  const shown = []; // ids, oldest first
  const probes = [];
  return {
    /** A `hello` from the server: true when the page must clear its list (another server process, or the first). */
    hello(id) {
      if (instance !== undefined && id === instance) return false;
      instance = id;
      last = 0;
      shown.length = 0;
      probes.length = 0;
      return true;
    },
    /** Entries the page does not have yet (by id), oldest first; ids the page shows and must now remove. */
    add(entries) {
      const fresh = [];
      for (const e of entries) {
        if (e.id <= last) continue;
        last = e.id;
        fresh.push(e);
      }
      const before = new Set([...shown, ...probes]);
      for (const e of fresh) (isProbe(e) ? probes : shown).push(e.id);
      const gone = new Set([
        ...shown.splice(0, Math.max(0, shown.length - max)),
        ...probes.splice(0, Math.max(0, probes.length - maxProbes)),
      ]);
      return {
        added: fresh.filter((e) => !gone.has(e.id)),
        dropped: [...gone].filter((id) => before.has(id)),
      };
    },
  };
}
