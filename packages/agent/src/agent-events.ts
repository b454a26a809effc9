/** The agent's event publisher (events/publisher.ts), on the NATS link when there is one. Moved out of agent.ts. */
import type { Logger } from 'pino';
import type { AgentDeps } from './agent-api.js';
import type { Clock } from './clock.js';
import { createEventPublisher, type EventPublisher } from './events/publisher.js';

export function createAgentEvents(deps: AgentDeps, clock: Clock, log: Logger): EventPublisher {
  const { config } = deps;
  const events = createEventPublisher({
    prefix: config.nats.subjectPrefix,
    fleet: config.fleet,
    node: config.node.name,
    maxPending: config.nats.maxPendingEvents,
    logger: log,
    now: () => clock.now(),
    ...(deps.onEvent ? { onEvent: deps.onEvent } : {}),
  });
  if (deps.nats) events.setTransport(deps.nats);
  return events;
}
