/**
 * The live flows of `lab watch` (lab/src/flows/watch.ts) on the page: each tick `lab watch` publishes one LabFlows
 * on labFlowsSubject over NATS; the dashboard keeps the last good one. What arrives is checked at the edge: a
 * message that is not a LabFlows is refused (naming the field and the value) and the last good one stays shown.
 */
import { DashboardError } from './errors.js';

export interface LabFlows {
  /** The lab's id. */
  readonly lab: string;
  /** ISO time of the tick. */
  readonly at: string;
  readonly total: number;
  readonly open: number;
  /** Flows that broke since `lab watch` started (reset, timeout, backend changed). */
  readonly broken: number;
  /** Longest gap between two answers on any flow, ms. */
  readonly longestPauseMs: number;
  /** Open flows per node that carries them (`?`: no node reported the flow). */
  readonly perNode: Readonly<Record<string, number>>;
  /** Open flows per backend that answers them. */
  readonly perBackend: Readonly<Record<string, number>>;
  /** Every node and backend of the lab at the tick (also those without flows). */
  readonly nodes: readonly string[];
  readonly backends: readonly string[];
  /** Killed nodes and failed backends. */
  readonly down: readonly string[];
  /** Nodes the router's ECMP route to the TCP VIP points at. */
  readonly nextHops: readonly string[];
}

/** `<prefix>.<fleet>.lab.flows`: four tokens, so the agents' event filter (five tokens) never matches it. */
export function labFlowsSubject(prefix: string, fleet: string): string {
  return `${prefix}.${fleet}.lab.flows`;
}

/** A message is small: a few hundred names at most. */
export const MAX_LAB_FLOWS_BYTES = 64 * 1024;
const MAX_NAMES = 1_000;
const MAX_NAME_CHARS = 64;

function refuse(field: string, value: unknown, what: string): never {
  const shown = JSON.stringify(value)?.slice(0, 80) ?? String(value);
  throw new DashboardError('BAD_REQUEST', `lab flows: ${field}: ${shown} is not ${what}`);
}

function count(field: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) refuse(field, v, 'a count (an integer >= 0)');
  return v;
}

function name(field: string, v: unknown): string {
  if (typeof v !== 'string' || v === '' || v.length > MAX_NAME_CHARS) refuse(field, v, 'a name');
  return v;
}

function names(raw: Record<string, unknown>, field: string): string[] {
  const v = raw[field];
  if (!Array.isArray(v) || v.length > MAX_NAMES) refuse(field, v, `a list of at most ${MAX_NAMES} names`);
  return v.map((x, i) => name(`${field}[${i}]`, x));
}

function counts(raw: Record<string, unknown>, field: string): Record<string, number> {
  const v = raw[field];
  if (typeof v !== 'object' || v === null || Array.isArray(v)) refuse(field, v, 'a map of name -> count');
  const entries = Object.entries(v as Record<string, unknown>);
  if (entries.length > MAX_NAMES) refuse(field, `${entries.length} entries`, `at most ${MAX_NAMES} entries`);
  const out: Record<string, number> = {};
  for (const [k, n] of entries) out[name(`${field} key`, k)] = count(`${field}.${k}`, n);
  return out;
}

/** Parses one message of labFlowsSubject; throws DashboardError BAD_REQUEST naming the field and the value. */
export function parseLabFlows(text: string): LabFlows {
  if (text.length > MAX_LAB_FLOWS_BYTES) refuse('message', `${text.length} bytes`, `at most ${MAX_LAB_FLOWS_BYTES}`);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new DashboardError('BAD_REQUEST', `lab flows: not JSON: ${(err as Error).message}`, { cause: err });
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) refuse('message', raw, 'an object');
  const r = raw as Record<string, unknown>;
  if (typeof r.at !== 'string' || Number.isNaN(Date.parse(r.at))) refuse('at', r.at, 'an ISO time');
  return {
    lab: name('lab', r.lab),
    at: r.at,
    total: count('total', r.total),
    open: count('open', r.open),
    broken: count('broken', r.broken),
    longestPauseMs: count('longestPauseMs', r.longestPauseMs),
    perNode: counts(r, 'perNode'),
    perBackend: counts(r, 'perBackend'),
    nodes: names(r, 'nodes'),
    backends: names(r, 'backends'),
    down: names(r, 'down'),
    nextHops: names(r, 'nextHops'),
  };
}
