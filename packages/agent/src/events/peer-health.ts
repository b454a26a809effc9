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

export function followPeerHealth(nats: NatsLink, opts: PeerHealthOptions): void {
  const decoder = new TextDecoder();
  nats.subscribe(eventFilter(opts.prefix, opts.fleet, { kind: 'member.health' }), (data) => {
    try {
      const ev = JSON.parse(decoder.decode(data)) as AgentEvent<'member.health'>;
      if (ev.node !== opts.node && ev.data.changed) {
        opts.onObservation(ev.node, ev.data.member, ev.data.observed as ObservedStatus);
      }
    } catch {
      // not an agent event: ignore
    }
  });
}
