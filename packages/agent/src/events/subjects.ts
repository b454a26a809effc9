/**
 * NATS subject layout of agent events (docs/design/0006-agent.md):
 *
 *   <prefix>.<fleet>.<kind>.<node>      e.g. l4fleet.default.vip.announced.node1
 *
 * Every kind has exactly two tokens, so `<prefix>.<fleet>.*.*.<node>` is one node's events and
 * `<prefix>.<fleet>.vip.>` every VIP event of the fleet.
 */
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

/** Subscription subject for `l4fleet events`: every event of the fleet, narrowed by kind and/or node. */
export function eventFilter(prefix: string, fleet: string, opts: { kind?: string; node?: string } = {}): string {
  const kind = opts.kind ?? '*.*';
  return `${prefix}.${fleet}.${kind}.${opts.node ?? '*'}`;
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
