/**
 * Agents over a real etcd, with the fake speaker and the recording data plane and health checks `none` in their
 * fleets: the control plane under test (decisions, table history, slow start) is real, nothing is sent anywhere.
 * Used by test/second-chance-history.int.test.ts and test/slow-start.int.test.ts.
 */
import {
  type Agent,
  type AgentConfig,
  type AgentEvent,
  createAgent,
  parseAgentConfig,
  type RunningAgent,
  runAgent,
} from '@l4fleet/agent';
import { createFakeSpeaker } from '@l4fleet/bgp';
import type { Fleet } from '@l4fleet/config';
import { createRecordingDataPlane, type RecordingDataPlane } from '@l4fleet/dataplane';
import { EtcdFleetStore } from '@l4fleet/store';
import type { Logger } from 'pino';
import { type EtcdHandle, startEtcd } from './etcd.js';
import { eventually } from './eventually.js';

export interface RecordedNode {
  readonly agent: Agent;
  readonly store: EtcdFleetStore;
  readonly dataPlane: RecordingDataPlane;
  readonly events: AgentEvent[];
}

export interface EtcdAgents {
  readonly etcd: EtcdHandle;
  /** The operator's client (apply, reads). */
  readonly admin: EtcdFleetStore;
  readonly nodes: readonly RecordedNode[];
  /** Starts agent `name` (node address 198.18.0.(11 + i)) and waits until it is ready. */
  startNode(name: string, i: number): Promise<RecordedNode>;
  /** Closes every agent and client and stops etcd. */
  close(): Promise<void>;
}

/** Starts etcd and applies `fleet` under `prefix`. */
export async function startEtcdAgents(prefix: string, fleet: Fleet, logger: Logger): Promise<EtcdAgents> {
  const etcd = await startEtcd();
  const admin = new EtcdFleetStore({ endpoints: etcd.endpoints, prefix, logger });
  const nodes: RecordedNode[] = [];
  try {
    await admin.apply(fleet, { expectRevision: 0 });
  } catch (err) {
    await admin.close();
    await etcd.stop();
    throw err;
  }
  return {
    etcd,
    admin,
    nodes,
    async startNode(name, i) {
      const store = new EtcdFleetStore({ endpoints: etcd.endpoints, prefix, logger });
      const dataPlane = createRecordingDataPlane({ requireSamePort: false });
      const events: AgentEvent[] = [];
      const agent = createAgent({
        config: parseAgentConfig({
          node: { name, interface: 'lo', address: `198.18.0.${11 + i}` },
          bgp: { asn: 65001, peers: [{ address: '198.18.0.1', asn: 65000 }] },
          etcd: { endpoints: etcd.endpoints, prefix },
          dataplane: { driver: 'dry-run' },
        }),
        store,
        speaker: createFakeSpeaker(),
        dataPlane,
        logger,
        onEvent: (e) => events.push(e),
      });
      const node = { agent, store, dataPlane, events };
      nodes.push(node);
      await agent.start();
      await agent.whenReady(10_000);
      return node;
    },
    async close() {
      for (const n of nodes.splice(0)) {
        await n.agent.close();
        await n.store.close();
      }
      await admin.close();
      await etcd.stop();
    },
  };
}

/**
 * One agent through runAgent (what `l4fleet agent` runs: agent.yaml's files are read, /metrics served on a free
 * loopback port) over a real etcd, with the fake speaker and the recording data plane; `extra` overrides or adds
 * agent.yaml sections. Resolves once the agent is ready.
 */
/** The agent.yaml runRecordingAgent runs (a reload in a test loads it again). */
export function recordingAgentConfig(
  endpoints: readonly string[],
  prefix: string,
  extra: Record<string, unknown> = {},
): AgentConfig {
  return parseAgentConfig({
    node: { name: 'n1', interface: 'lo', address: '198.18.0.11' },
    bgp: { asn: 65001, peers: [{ address: '198.18.0.1', asn: 65000 }] },
    etcd: { endpoints, prefix },
    metrics: { listen: '127.0.0.1:0' },
    dataplane: { driver: 'dry-run' },
    state: { enabled: false },
    ...extra,
  });
}

export async function runRecordingAgent(
  endpoints: readonly string[],
  prefix: string,
  logger: Logger,
  extra: Record<string, unknown> = {},
): Promise<RunningAgent> {
  const running = await runAgent(recordingAgentConfig(endpoints, prefix, extra), {
    logger,
    speaker: createFakeSpeaker(),
    dataPlane: createRecordingDataPlane({ requireSamePort: false }),
  });
  await running.agent.whenReady(10_000);
  return running;
}

export type OneRecordingAgent = EtcdAgents & { readonly running: RunningAgent };

/** etcd with `fleet` applied under `prefix` and one agent on it (runRecordingAgent); close() ends both. */
export async function startOneRecordingAgent(prefix: string, fleet: Fleet, logger: Logger): Promise<OneRecordingAgent> {
  const env = await startEtcdAgents(prefix, fleet, logger);
  let running: RunningAgent;
  try {
    running = await runRecordingAgent(env.etcd.endpoints, prefix, logger);
  } catch (err) {
    await env.close();
    throw err;
  }
  return {
    ...env,
    running,
    async close() {
      await running.close();
      await env.close();
    },
  };
}

/** Waits (15 s at most) until the agent has decided each member of `want` as it says; its decisions then. */
export function decidedAs(running: RunningAgent | undefined, want: Readonly<Record<string, string>>) {
  return eventually(
    `decided ${JSON.stringify(want)}`,
    () => running?.agent.status().decided ?? {},
    (d) => Object.entries(want).every(([k, v]) => d[k] === v),
    15_000,
    100,
  );
}

/** The first node's status record's probeFailures (what describe vip prints), once they name `member` (10 s at most). */
export function probeFailuresNaming(store: EtcdFleetStore | undefined, member: string) {
  return eventually(
    `probeFailures of ${member} in the status record`,
    async () => (await store?.listNodes())?.[0]?.status?.probeFailures ?? {},
    (f) => f[member] !== undefined,
    10_000,
    100,
  );
}
