/**
 * What both runtimes do on a node: the agent's config file, the lab's observe table (which flows a node carries) and,
 * for the bpf data plane, the node's bpf file system (bpffs.ts).
 */
import { writeFileSync } from 'node:fs';
import { run } from '@l4fleet/process';
import { segmentOf } from '../topology/model.js';
import { agentConfigPath, agentYaml } from './agent.js';
import { bpffsDir, mountBpffs } from './bpffs.js';
import type { LabContext } from './lab-runtime.js';
import { hubPortName } from './netns-plan.js';
import { observeRuleset, observeTableOf } from './nft.js';

/** Writes the node's agent.yaml (the Docker runtime mounts it into the container); returns its path. */
export function writeAgentConfig(lab: LabContext, node: string): string {
  const conf = agentConfigPath(lab.hostDir(node));
  writeFileSync(conf, agentYaml(lab.topology, node, lab.hostDir(node)));
  return conf;
}

/**
 * The lab's observe table of `node`, in the router on its port toward the node (nft.ts): made anew whenever the node
 * is (the port is re-created with it, and a netdev chain does not follow a new device of the same name).
 */
export async function observe(lab: LabContext, node: string): Promise<void> {
  const namespace = lab.ns('router');
  const table = observeTableOf(node);
  const port = hubPortName(segmentOf(lab.topology, 'fabric'), node);
  await run(['nft', 'delete', 'table', 'netdev', table], { namespace, allowFailure: true });
  await run(['nft', '-f', '-'], { namespace, input: observeRuleset(table, port) });
}

/** The bpf driver's pins live in the node's own bpf file system (agent.ts); mounted before the agent starts. */
export async function prepareDataPlane(lab: LabContext, node: string): Promise<void> {
  if (lab.topology.dataPath.dataplane === 'bpf') await mountBpffs(bpffsDir(lab.hostDir(node)));
}
