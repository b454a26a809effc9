/**
 * NATS subject layout of agent events (docs/design/0006-agent.md):
 *
 *   <prefix>.<fleet>.<kind>.<node>      e.g. l4fleet.default.vip.announced.node1
 *
 * Every kind has exactly two tokens; prefix and fleet are one token each. A node name may hold dots (NODE_NAME:
 * `lb1.dc1`, an FQDN), so the node is one token or more: `<prefix>.<fleet>.*.*.>` is every event of the fleet and
 * `<prefix>.<fleet>.*.*.lb1.dc1` exactly one node's (a single `*` for the node saw nothing of `lb1.dc1`).
 */
import { NODE_NAME } from '@l4fleet/config';
import { AgentError } from '../errors.js';

export const EVENT_KINDS = [
  'node.state',
  'vip.announced',
  'vip.withdrawn',
  'table.applied',
  'member.health',
  'state.rejected',
  'record.rejected',
  'bgp.session',
  'bfd.session',
  'config.reload',
] as const;

export type EventKind = (typeof EVENT_KINDS)[number];

export function eventSubject(prefix: string, fleet: string, kind: EventKind, node: string): string {
  return `${prefix}.${fleet}.${kind}.${node}`;
}

/**
 * What the agent config allows for `fleet` and `nats.subjectPrefix`: one subject token, no `.`, no wildcard, no
 * space (a fleet `a.b` or a prefix `x y` named subjects no agent publishes on).
 */
export const SUBJECT_TOKEN = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * Subscription subject for `l4fleet events`, the dashboard and the peer-health fast path: every event of the fleet,
 * narrowed by kind and/or node. Throws AgentError `FLAG_INVALID` naming the flag (`--fleet` ...) and the value for
 * what would silently follow nothing, or more than asked (a node `>`).
 */
export function eventFilter(prefix: string, fleet: string, opts: { kind?: string; node?: string } = {}): string {
  const bad = (flag: string, value: string, what: string) =>
    new AgentError('FLAG_INVALID', `${flag}: ${JSON.stringify(value)} is not ${what}`);
  if (!SUBJECT_TOKEN.test(prefix)) throw bad('--subject-prefix', prefix, 'a subject token (1-64 of A-Z a-z 0-9 _ -)');
  if (!SUBJECT_TOKEN.test(fleet)) throw bad('--fleet', fleet, 'a subject token (1-64 of A-Z a-z 0-9 _ -)');
  if (opts.kind !== undefined && !(EVENT_KINDS as readonly string[]).includes(opts.kind)) {
    throw bad('--kind', opts.kind, `one of ${EVENT_KINDS.join(' | ')}`);
  }
  if (opts.node !== undefined && !NODE_NAME.test(opts.node)) {
    throw bad('--node', opts.node, 'a node name (1-63 of A-Z a-z 0-9 . _ -, starting alphanumeric)');
  }
  return `${prefix}.${fleet}.${opts.kind ?? '*.*'}.${opts.node ?? '>'}`;
}

/** What every event carries; `data` depends on the kind (see AgentEventData). */
export interface AgentEvent<K extends EventKind = EventKind> {
  readonly kind: K;
  readonly fleet: string;
  readonly node: string;
  /** ISO time on the publishing node. */
  readonly at: string;
  /** Per-node sequence number: a gap means events were dropped (NATS down, bounded buffer). */
  readonly seq: number;
  readonly data: AgentEventData[K];
}

export interface AgentEventData {
  'node.state': { state: string; previous: string; failStatic: boolean; reason?: string };
  'vip.announced': { vip: string; prefix: string; nextHop: string };
  'vip.withdrawn': { vip: string; prefix: string; reason: string };
  'table.applied': { vip: string; checksum: string; slotsChanged: number; durationMs: number; revision: number };
  'member.health': {
    member: string;
    observed: string;
    changed: boolean;
    ok: boolean;
    latencyMs: number;
    reason?: string;
  };
  'state.rejected': { error: string; code: string };
  /** A record the store refused (family: desired, decided, nodes, health, election); the last good state serves. */
  'record.rejected': { family: string; key?: string; code: string; error: string };
  /** A BGP session changed state; reason `gobgpdUnreachable`: gobgpd stopped answering (dead or hung), not the peer. */
  'bgp.session': { peer: string; state: string; previous: string; reason?: string };
  /**
   * A BFD session of the node's bfdd changed state (up, down, init, shutdown); reason `dataPlaneFailed`: the agent set
   * it AdminDown because its data plane failed, `dataPlaneRecovered`: it lifted that.
   */
  'bfd.session': { peer: string; state: string; previous: string; reason?: string };
  /** agent.yaml reloaded (SIGHUP): `applied` with the fields changed, or `refused` with why (nothing changed). */
  'config.reload': { result: 'applied' | 'refused'; changed: string[]; error?: string };
}
