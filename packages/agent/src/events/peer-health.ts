/**
 * The fast path of health reports: other nodes' `member.health` events from NATS go to this node's aggregator
 * (etcd reports stay the truth; NATS only makes a decision faster, 0006 "Health").
 */
import type { ObservedStatus } from '../health/hysteresis.js';
import type { NatsLink } from './nats-link.js';
import { type AgentEvent, eventFilter } from './subjects.js';

export interface PeerHealthOptions {
  readonly prefix: string;
  readonly fleet: string;
  /** This node: its own events are already known locally. */
  readonly node: string;
  /** Another node's observation changed. */
  readonly onObservation: (node: string, member: string, status: ObservedStatus) => void;
}

const OBSERVED: ReadonlySet<string> = new Set(['up', 'down', 'unknown']);
/** Longer names are no member key of a valid fleet (pool and member names are at most 63 characters). */
const MAX_NAME_CHARS = 128;

const isName = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= MAX_NAME_CHARS;

/** The observation in a NATS message, or undefined when it is not a well-formed `member.health` change. */
export function peerObservation(
  data: Uint8Array,
): { node: string; member: string; status: ObservedStatus } | undefined {
  let ev: Partial<AgentEvent<'member.health'>>;
  try {
    ev = JSON.parse(new TextDecoder().decode(data)) as Partial<AgentEvent<'member.health'>>;
  } catch {
    return undefined;
  }
  const d = ev?.data;
  // Anyone who can publish on the subject can send this: only well-formed changes reach the aggregator.
  if (!isName(ev?.node) || !d || d.changed !== true || !isName(d.member) || !OBSERVED.has(d.observed as string)) {
    return undefined;
  }
  return { node: ev.node, member: d.member, status: d.observed as ObservedStatus };
}

export function followPeerHealth(nats: NatsLink, opts: PeerHealthOptions): void {
  nats.subscribe(eventFilter(opts.prefix, opts.fleet, { kind: 'member.health' }), (data) => {
    const o = peerObservation(data);
    if (o && o.node !== opts.node) opts.onObservation(o.node, o.member, o.status);
  });
}
