/** The event timeline: agent events from NATS and the dashboard's own actions, newest last, bounded. */

/** Entries kept (oldest dropped first): a few minutes of a busy fleet; the page shows the tail. */
export const TIMELINE_CAPACITY = 500;

export interface TimelineEntry {
  /** Dashboard-local sequence (the page uses it to skip entries it has). */
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
  add(entry: Omit<TimelineEntry, 'id'>): TimelineEntry;
  list(): readonly TimelineEntry[];
  /** Called with every entry added; returns an unsubscribe function. */
  subscribe(listener: (entry: TimelineEntry) => void): () => void;
}

export function createTimeline(capacity = TIMELINE_CAPACITY): Timeline {
  const entries: TimelineEntry[] = [];
  const listeners = new Set<(entry: TimelineEntry) => void>();
  let next = 1;
  return {
    add(e) {
      const entry = { ...e, id: next++ };
      entries.push(entry);
      if (entries.length > capacity) entries.splice(0, entries.length - capacity);
      for (const l of listeners) l(entry);
      return entry;
    },
    list: () => entries,
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
