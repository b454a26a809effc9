/**
 * The event timeline: agent events from NATS and the dashboard's own actions, newest last, bounded. Unchanged health
 * probes (one per probe, member and node: hundreds a second in a busy fleet, hidden on the page unless asked for)
 * are kept in a buffer of their own, so they never push actions and withdrawals out.
 */
import { randomUUID } from 'node:crypto';

/** Entries kept (oldest dropped first), unchanged probes apart: a few minutes of a busy fleet; the page shows the tail. */
export const TIMELINE_CAPACITY = 500;
/** Unchanged health probes kept (oldest dropped first): the page shows them only when asked for. */
export const TIMELINE_PROBE_CAPACITY = 100;

export interface TimelineEntry {
  /** Sequence of this dashboard process (the page uses it to skip entries it has; `Timeline.instance` names it). */
  readonly id: number;
  /** ISO time (the publishing node's for agent events). */
  readonly at: string;
  /** Event kind (`node.state`, `vip.announced`, ...) or `action` for the dashboard's writes. */
  readonly kind: string;
  /** Node that published it; `dashboard` for actions. */
  readonly node: string;
  readonly data: Readonly<Record<string, unknown>>;
}

export interface Timeline {
  /**
   * Names this timeline (one per dashboard process): ids start at 1 in each, so a page seeing another instance in
   * `hello` starts its list over instead of skipping ids it had from the process before.
   */
  readonly instance: string;
  add(entry: Omit<TimelineEntry, 'id'>): TimelineEntry;
  /** Every entry kept, probes included, in id order. */
  list(): readonly TimelineEntry[];
  /** Called with every entry added; returns an unsubscribe function. */
  subscribe(listener: (entry: TimelineEntry) => void): () => void;
}

/** A health probe that changed nothing (agent `member.health` with `changed: false`). */
export function isUnchangedProbe(e: Pick<TimelineEntry, 'kind' | 'data'>): boolean {
  return e.kind === 'member.health' && e.data.changed === false;
}

/** Merges two lists, each in id order, into one in id order. */
function mergeById(a: readonly TimelineEntry[], b: readonly TimelineEntry[]): TimelineEntry[] {
  const out: TimelineEntry[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    const x = a[i];
    const y = b[j];
    if (y === undefined || (x !== undefined && x.id < y.id)) {
      out.push(x as TimelineEntry);
      i++;
    } else {
      out.push(y);
      j++;
    }
  }
  return out;
}

export function createTimeline(capacity = TIMELINE_CAPACITY, probeCapacity = TIMELINE_PROBE_CAPACITY): Timeline {
  const entries: TimelineEntry[] = [];
  const probes: TimelineEntry[] = [];
  const listeners = new Set<(entry: TimelineEntry) => void>();
  let next = 1;
  return {
    instance: randomUUID(),
    add(e) {
      const entry = { ...e, id: next++ };
      const kept = isUnchangedProbe(entry) ? probes : entries;
      const limit = kept === probes ? probeCapacity : capacity;
      kept.push(entry);
      if (kept.length > limit) kept.splice(0, kept.length - limit);
      for (const l of listeners) l(entry);
      return entry;
    },
    list: () => mergeById(entries, probes),
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}

/**
 * An agent event as received on NATS (docs/design/0006-agent.md), checked before it enters the timeline: a
 * malformed message is reported, never shown as if it were an event.
 */
export function parseAgentEvent(text: string): Omit<TimelineEntry, 'id'> {
  const ev = JSON.parse(text) as Record<string, unknown>;
  const { kind, node, at, data } = ev;
  if (typeof kind !== 'string' || typeof node !== 'string' || typeof at !== 'string') {
    throw new TypeError(`event: kind, node and at must be strings (got ${JSON.stringify({ kind, node, at })})`);
  }
  const fields = typeof data === 'object' && data !== null ? (data as Record<string, unknown>) : {};
  return { kind, node, at, data: fields };
}
