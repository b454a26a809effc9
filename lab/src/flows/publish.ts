/**
 * `lab watch` on the dashboard's page: each tick goes out on NATS as a LabFlows (packages/dashboard lab-flows.ts),
 * which the lab's dashboard follows. Best effort: without NATS, `lab watch` still shows its terminal view.
 * The lab CLI reaches NATS on the control address from the host, as it reaches etcd (the control link).
 */
import { type LabFlows, labFlowsSubject } from '@l4fleet/dashboard';
import { connect, type NatsConnection } from 'nats';
import type { Logger } from 'pino';
import type { Topology } from '../topology/model.js';
import type { WatchTick } from './watch.js';

/** The lab's agents run fleet `default` (runtime/agent.ts) under the agents' default subject prefix `l4fleet`. */
export const LAB_FLOWS_SUBJECT = labFlowsSubject('l4fleet', 'default');
export const FLOWS_NATS_CONNECT_TIMEOUT_MS = 2_000;

/** The message of one tick (pure). */
export function labFlowsOf(labId: string, tick: WatchTick): LabFlows {
  const s = tick.summary;
  return {
    lab: labId,
    at: tick.at,
    total: s.total,
    open: s.open,
    broken: s.broken,
    longestPauseMs: s.longestPauseMs,
    perNode: s.perNode,
    perBackend: s.perBackend,
    nodes: tick.nodes,
    backends: tick.backends,
    down: tick.down,
    nextHops: tick.nextHops,
  };
}

export interface FlowsPublisher {
  /** Publishes the tick if NATS is connected (never buffers while it is not). */
  publish(tick: WatchTick): void;
  close(): Promise<void>;
}

export async function publishLabFlows(
  lab: { readonly id: string; readonly topology: Topology },
  log?: Logger,
): Promise<FlowsPublisher> {
  let nc: NatsConnection | undefined;
  try {
    nc = await connect({
      servers: [lab.topology.control.natsUrl],
      name: 'l4fleet-lab-watch',
      timeout: FLOWS_NATS_CONNECT_TIMEOUT_MS,
      maxReconnectAttempts: -1,
    });
  } catch (err) {
    log?.warn(
      { event: 'flowsNotPublished', nats: lab.topology.control.natsUrl, err: (err as Error).message },
      'NATS not reachable: the dashboard will not show these flows',
    );
  }
  const encoder = new TextEncoder();
  return {
    publish(tick) {
      if (!nc || nc.isClosed() || nc.isDraining()) return;
      nc.publish(LAB_FLOWS_SUBJECT, encoder.encode(JSON.stringify(labFlowsOf(lab.id, tick))));
    },
    async close() {
      await nc?.drain().catch(() => undefined);
    },
  };
}
