/**
 * The event timeline: agent events from NATS and the dashboard's own actions, newest last, bounded. Unchanged health
 * probes (one per probe, member and node: hundreds a second in a busy fleet, hidden on the page unless asked for)
 * are kept in a buffer of their own, so they never push actions and withdrawals out.
 */
import { randomUUID } from 'node:crypto';
import { NODE_NAME, showValue } from '@l4fleet/config';
import { DashboardError } from './errors.js';

/** Entries kept (oldest dropped first), unchanged probes apart: a few minutes of a busy fleet; the page shows the tail. */
export const TIMELINE_CAPACITY = 500;
/** Unchanged health probes kept (oldest dropped first): the page shows them only when asked for. */
export const TIMELINE_PROBE_CAPACITY = 100;
/**
 * The kept entries' JSON together at most this many characters (oldest dropped first, probes or not; the newest is
 * always kept): every page is sent the whole timeline when it connects, in the same stream as the view, and a stream
 * with more than SSE_MAX_BUFFERED_BYTES (4 MiB) unsent besides the view is cut, so 500 entries near
 * MAX_AGENT_EVENT_CHARS (~32 MiB) would cut every new page at once, for good. An agent's events are ~0.2-2 KiB.
 */
export const TIMELINE_MAX_CHARS = 1024 * 1024;

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

export function createTimeline(
  capacity = TIMELINE_CAPACITY,
  probeCapacity = TIMELINE_PROBE_CAPACITY,
  maxChars = TIMELINE_MAX_CHARS,
): Timeline {
  const entries: TimelineEntry[] = [];
  const probes: TimelineEntry[] = [];
  const listeners = new Set<(entry: TimelineEntry) => void>();
  /** Entry id -> the length of its JSON, for every kept entry; `chars` is their sum. */
  const sizes = new Map<number, number>();
  let chars = 0;
  const drop = (list: TimelineEntry[], count: number) => {
    for (const gone of list.splice(0, count)) {
      chars -= sizes.get(gone.id) ?? 0;
      sizes.delete(gone.id);
    }
  };
  let next = 1;
  return {
    instance: randomUUID(),
    add(e) {
      const entry = { ...e, id: next++ };
      const kept = isUnchangedProbe(entry) ? probes : entries;
      const limit = kept === probes ? probeCapacity : capacity;
      kept.push(entry);
      const size = JSON.stringify(entry).length;
      sizes.set(entry.id, size);
      chars += size;
      if (kept.length > limit) drop(kept, kept.length - limit);
      while (chars > maxChars && entries.length + probes.length > 1) {
        const a = entries[0];
        const b = probes[0];
        // The oldest of the two lists (each is in id order), never the entry just added.
        const fromEntries = b === undefined || (a !== undefined && a.id < b.id);
        if ((fromEntries ? a : b)?.id === entry.id) break;
        drop(fromEntries ? entries : probes, 1);
      }
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
 * Longest agent event message taken, in characters (of the decoded text). An agent's largest events (state.rejected, config.reload) carry an error of at most ~100 problems,
 * well within it; 500 kept entries of this size are ~32 MiB of snapshot JSON, where 500 of ~1 MB made
 * JSON.stringify of the snapshot throw and every page's state request fail.
 */
export const MAX_AGENT_EVENT_CHARS = 64 * 1024;
/**
 * An event kind: two subject tokens (docs/design/0006-agent.md), as `vip.announced`. A pattern, not the agent's
 * EVENT_KINDS list, so a newer agent's kinds still show on an older dashboard.
 */
const EVENT_KIND = /^[a-z][a-z0-9-]{0,31}\.[a-z][a-z0-9-]{0,31}$/;
/** Longest `at` text: an ISO time is 24 characters (27 with microseconds, 29 with an offset). */
const MAX_AT_CHARS = 40;

function refuse(field: string, value: unknown, what: string): never {
  throw new DashboardError('BAD_REQUEST', `${field}: ${showValue(value)} is not ${what}`);
}

/**
 * An agent event as received on NATS (docs/design/0006-agent.md), checked before it enters the timeline: a
 * malformed message is refused (DashboardError BAD_REQUEST naming the field and the value, bounded), never shown as
 * if it were an event. The dashboard logs and drops it.
 */
export function parseAgentEvent(text: string): Omit<TimelineEntry, 'id'> {
  if (text.length > MAX_AGENT_EVENT_CHARS) {
    throw new DashboardError(
      'BAD_REQUEST',
      `event: ${text.length} characters is more than the limit of ${MAX_AGENT_EVENT_CHARS} (MAX_AGENT_EVENT_CHARS)`,
    );
  }
  let ev: unknown;
  try {
    ev = JSON.parse(text);
  } catch (err) {
    throw new DashboardError('BAD_REQUEST', `event: not JSON: ${(err as Error).message.slice(0, 120)}`, {
      cause: err,
    });
  }
  if (typeof ev !== 'object' || ev === null || Array.isArray(ev)) refuse('event', ev, 'an object');
  const { kind, node, at, data } = ev as Record<string, unknown>;
  if (typeof kind !== 'string' || !EVENT_KIND.test(kind))
    refuse('event.kind', kind, 'an event kind (as vip.announced)');
  if (typeof node !== 'string' || !NODE_NAME.test(node)) refuse('event.node', node, 'a node name');
  if (typeof at !== 'string' || at.length > MAX_AT_CHARS || Number.isNaN(Date.parse(at))) {
    refuse('event.at', at, 'an ISO time');
  }
  if (data !== undefined && (typeof data !== 'object' || data === null || Array.isArray(data))) {
    refuse('event.data', data, 'an object');
  }
  return { kind, node, at, data: (data ?? {}) as Record<string, unknown> };
}
