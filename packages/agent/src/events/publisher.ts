/**
 * Publishes agent events on NATS. NATS is best effort: while it is unreachable, events wait in a bounded buffer
 * (`maxPendingEvents`, oldest dropped first and counted), never in an unbounded queue; health decisions never
 * depend on NATS (etcd carries the reports too). An event the connection refuses (too big for NATS) is dropped and
 * counted at once so it cannot hold back the ones after it.
 */
import type { Logger } from 'pino';
import { type AgentEvent, type AgentEventData, type EventKind, eventSubject } from './subjects.js';

/** The part of a NATS connection the publisher needs (nats.js NatsConnection fits). */
export interface EventTransport {
  publish(subject: string, data: Uint8Array): void;
  /** True while the connection can deliver. */
  isConnected(): boolean;
}

export interface EventPublisher {
  emit<K extends EventKind>(kind: K, data: AgentEventData[K]): void;
  /** Attaches (or detaches, with undefined) the transport and flushes what is pending. */
  setTransport(t: EventTransport | undefined): void;
  /** Called by the transport's owner when the connection is back. */
  flush(): void;
  readonly published: number;
  readonly dropped: number;
  readonly pending: number;
}

export interface EventPublisherOptions {
  readonly prefix: string;
  readonly fleet: string;
  readonly node: string;
  readonly maxPending: number;
  readonly logger: Logger;
  readonly now?: () => number;
  /** Local listeners (the aggregator on this node, tests); called synchronously for every event. */
  readonly onEvent?: (e: AgentEvent) => void;
}

export function createEventPublisher(opts: EventPublisherOptions): EventPublisher {
  const now = opts.now ?? Date.now;
  const encoder = new TextEncoder();
  const pending: { subject: string; body: Uint8Array }[] = [];
  let transport: EventTransport | undefined;
  let seq = 0;
  let published = 0;
  let dropped = 0;
  let warned = false;

  let refusedWarned = false;

  /**
   * `disconnected`: keep the event for later. `refused`: the transport threw while connected (nats.js
   * MAX_PAYLOAD_EXCEEDED, a bad subject): it would throw again, so it is dropped and counted, never retried (a
   * retried head held every later event back until NATS reconnected).
   */
  const send = (subject: string, body: Uint8Array): 'sent' | 'disconnected' | 'refused' => {
    if (!transport?.isConnected()) return 'disconnected';
    try {
      transport.publish(subject, body);
      published += 1;
      refusedWarned = false;
      return 'sent';
    } catch (err) {
      dropped += 1;
      if (!refusedWarned) {
        // Once until an event goes out again: a transport refusing everything must not log per event.
        refusedWarned = true;
        opts.logger.warn({
          event: 'eventDropped',
          subject,
          bytes: body.length,
          reason: 'publishRefused',
          err: (err as Error).message,
        });
      }
      return 'refused';
    }
  };

  const flush = (): void => {
    while (pending.length > 0) {
      const head = pending[0] as { subject: string; body: Uint8Array };
      if (send(head.subject, head.body) === 'disconnected') return;
      pending.shift();
    }
    warned = false;
  };

  return {
    emit(kind, data) {
      seq += 1;
      const event: AgentEvent = {
        kind,
        fleet: opts.fleet,
        node: opts.node,
        at: new Date(now()).toISOString(),
        seq,
        data,
      };
      opts.onEvent?.(event);
      const subject = eventSubject(opts.prefix, opts.fleet, kind, opts.node);
      const body = encoder.encode(JSON.stringify(event));
      // Connected again before the transport's owner called flush(): what waited goes first, in order.
      if (pending.length > 0) flush();
      if (pending.length === 0 && send(subject, body) !== 'disconnected') return;
      if (opts.maxPending === 0) {
        dropped += 1;
        return;
      }
      pending.push({ subject, body });
      while (pending.length > opts.maxPending) {
        pending.shift();
        dropped += 1;
        if (!warned) {
          warned = true;
          opts.logger.warn({ event: 'eventsDropped', maxPending: opts.maxPending, reason: 'natsUnreachable' });
        }
      }
    },
    setTransport(t) {
      transport = t;
      flush();
    },
    flush,
    get published() {
      return published;
    },
    get dropped() {
      return dropped;
    },
    get pending() {
      return pending.length;
    },
  };
}
