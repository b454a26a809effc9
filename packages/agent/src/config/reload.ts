/**
 * What a reload (SIGHUP: `systemctl reload l4fleet-agent`) may change in a running agent. The peers are applied
 * live, the change an operator makes most (a router added, replaced or its MD5 password rotated): `bgp.peers`
 * (gobgpd reconciles its neighbours to the list, leaving an unchanged session alone, so the routes the other
 * routers hold from this node stay) and `bfd.peers` (sessions added to and removed from bfdd; the others stay up)
 * with BFD's timers (BFD_TIMER_FIELDS); and `logLevel` (turning debug logging on and off on a running node); `health.caFile` (an internal CA rotated: read
 * and checked again, also when only its content changed), `health.sourceAddress` and `health.maxConcurrentProbes`,
 * which every probe from then on uses (the checks, their timers and hysteresis stay). Every other field is built into a running
 * part (the etcd client and its lease, the data plane and its pins, gobgpd's global config, the metrics listener), so a reload that changes one is
 * refused whole, naming each such field: the running config stays as it was, and a restart (which drains the node
 * first) applies it. Pure: the agent decides, then acts (reloader.ts).
 */
import { isDeepStrictEqual } from 'node:util';
import type { AgentConfig } from './types.js';

/** The dotted fields a reload applies without a restart (`logLevel`: the agent's loggers; `health.*`: its probes). */
export const LIVE_RELOAD_FIELDS: readonly string[] = [
  'bgp.peers',
  'bfd.peers',
  'logLevel',
  'health.caFile',
  'health.sourceAddress',
  'health.maxConcurrentProbes',
];

/**
 * BFD's timers, live while BFD stays on: bfdd changes a running session's intervals with a Poll Sequence (RFC 5880
 * §6.8.3) instead of resetting it, so the routers' sessions (and the routes behind them) stay up.
 */
export const BFD_TIMER_FIELDS: readonly string[] = [
  'bfd.receiveIntervalMs',
  'bfd.transmitIntervalMs',
  'bfd.detectMultiplier',
];

export interface ReloadPlan {
  /** Every field that differs, as `section.field` (or a top-level field), in the config's order. */
  readonly changed: readonly string[];
  /** The changed fields only a restart applies; the reload is refused when there is any. */
  readonly needRestart: readonly string[];
}

/**
 * Fields the parser derives from others rather than reads from the file (dataplane.warnings: from flowTimeoutTcpS and
 * flowTimeoutUdpS): a change of one is the change of its source, named already; never a field to restart for.
 */
const DERIVED_FIELDS: readonly string[] = ['dataplane.warnings'];

const isSection = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** The fields that differ between two parsed configs, one level into each section (derived ones left out). */
export function changedFields(running: AgentConfig, next: AgentConfig): string[] {
  const a = running as unknown as Record<string, unknown>;
  const b = next as unknown as Record<string, unknown>;
  const changed: string[] = [];
  for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
    const x = a[key];
    const y = b[key];
    if (isDeepStrictEqual(x, y)) continue;
    if (!isSection(x) || !isSection(y)) {
      changed.push(key);
      continue;
    }
    for (const field of new Set([...Object.keys(x), ...Object.keys(y)])) {
      const path = `${key}.${field}`;
      if (!DERIVED_FIELDS.includes(path) && !isDeepStrictEqual(x[field], y[field])) changed.push(path);
    }
  }
  return changed;
}

/** Whether a changed field is applied by the reload: a live field, or a `bfd.*` field while BFD stays off. */
function appliedByReload(field: string, running: AgentConfig, next: AgentConfig): boolean {
  if (LIVE_RELOAD_FIELDS.includes(field)) return true;
  if (BFD_TIMER_FIELDS.includes(field) && running.bfd.enabled && next.bfd.enabled) return true;
  return field.startsWith('bfd.') && field !== 'bfd.enabled' && !running.bfd.enabled && !next.bfd.enabled;
}

export function planReload(running: AgentConfig, next: AgentConfig): ReloadPlan {
  const changed = changedFields(running, next);
  return { changed, needRestart: changed.filter((f) => !appliedByReload(f, running, next)) };
}
