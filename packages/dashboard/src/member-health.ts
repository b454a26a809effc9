/**
 * A member's health as the page shows it, from the nodes' health reports and status records, bounded whatever the
 * number of nodes (fleet-view.ts MemberRow).
 */
import type { MemberStatus } from '@l4fleet/config';
import type { HealthReport, NodeView } from '@l4fleet/store';

/**
 * Nodes named per member (disagreeing, and with a down reason). The view is sent whole to every page at every
 * rebuild, so a member's record must not grow with the nodes: one name per node per member made 100,000 members of 64
 * nodes 476 MB of JSON, and 130,000 more than a JavaScript string holds (the fleet allows 250,000).
 */
export const MAX_NODES_NAMED = 8;

/**
 * A member's health as the nodes see it, bounded whatever the number of nodes: what the page needs is how many agree
 * and which few do not ("n7 sees it down alone").
 */
export interface MemberHealth {
  /** Nodes whose health report has the member up. */
  readonly up: number;
  readonly down: number;
  /** Live nodes whose health report does not have the member (no report yet, or not probing it yet). */
  readonly unknown: number;
  /**
   * Nodes whose view differs from the decision (one not made yet counts as up, as tables count it), at most
   * MAX_NODES_NAMED, first by node name.
   */
  readonly disagree: readonly { readonly node: string; readonly status: MemberStatus }[];
  /** Disagreeing nodes beyond those named. */
  readonly disagreeOmitted: number;
}

/** MemberRow's health fields. */
export interface MemberHealthRow {
  readonly health: MemberHealth;
  /** Node -> why it sees the member down; at most MAX_NODES_NAMED, first by node name. */
  readonly downReasons: Readonly<Record<string, string>>;
  /** Nodes with a down reason beyond those named. */
  readonly downReasonsOmitted: number;
}

const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Each member's MemberHealth and down reasons, from the nodes' health reports and status records, in node-name order
 * (so the nodes named are the same at every rebuild).
 */
export function memberHealthOf(
  nodes: readonly NodeView[],
  health: readonly HealthReport[],
): (key: string, decided: MemberStatus | 'unknown') => MemberHealthRow {
  const reports = [...health].sort((a, b) => byName(a.node, b.node));
  const live = new Set(nodes.filter((n) => n.record !== undefined).map((n) => n.name));
  const reporting = new Set(reports.map((r) => r.node));
  const liveUnreported = [...live].filter((n) => !reporting.has(n)).length;
  const failing = [...nodes].sort((a, b) => byName(a.name, b.name)).filter((n) => n.status?.probeFailures);
  return (key, decided) => {
    const held = decided === 'unknown' ? 'up' : decided;
    let up = 0;
    let down = 0;
    let unknown = liveUnreported;
    const disagree: { node: string; status: MemberStatus }[] = [];
    let disagreeOmitted = 0;
    for (const r of reports) {
      const s = r.members.get(key);
      if (s === undefined) {
        if (live.has(r.node)) unknown++;
        continue;
      }
      if (s === 'up') up++;
      else down++;
      if (s === held) continue;
      if (disagree.length < MAX_NODES_NAMED) disagree.push({ node: r.node, status: s });
      else disagreeOmitted++;
    }
    const downReasons: Record<string, string> = {};
    let named = 0;
    let downReasonsOmitted = 0;
    for (const n of failing) {
      const f = n.status?.probeFailures?.[key];
      if (!f) continue;
      if (named < MAX_NODES_NAMED) {
        downReasons[n.name] = f.reason;
        named++;
      } else downReasonsOmitted++;
    }
    return { health: { up, down, unknown, disagree, disagreeOmitted }, downReasons, downReasonsOmitted };
  };
}
