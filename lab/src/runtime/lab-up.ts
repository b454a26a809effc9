/**
 * What `lab up` decides before it makes anything (lab.ts): the runtime, the mode, the data path (with its fallback
 * notice) and from them the new lab's first state.
 */
import { bpfAvailable, DEFAULT_BACKEND_OBJECT } from '@l4fleet/dataplane';
import { buildTopology, hostsOfKind } from '../topology/model.js';
import { dockerRuntime } from './docker-runtime.js';
import type { UpOptions } from './lab-options.js';
import type { LabRuntime } from './lab-runtime.js';
import { netnsRuntime } from './netns-runtime.js';
import type { LabState, Runtime } from './state.js';
import { bpfNotBuilt, upDataPath } from './up-data-path.js';

export const RUNTIMES: Readonly<Record<Runtime, LabRuntime>> = { netns: netnsRuntime, docker: dockerRuntime };

/** The state of a lab `up` is about to build from `options` (nothing written or made yet). */
export async function planLabState(options: UpOptions): Promise<LabState> {
  const runtime = options.runtime ?? 'netns';
  const mode = await RUNTIMES[runtime].resolveMode(options.mode ?? 'auto');
  const notBuilt = bpfAvailable() ?? bpfAvailable({ objectPath: DEFAULT_BACKEND_OBJECT });
  const bpfMissing =
    notBuilt !== undefined
      ? bpfNotBuilt(notBuilt)
      : mode === 'agent'
        ? await RUNTIMES[runtime].bpfMissing()
        : undefined;
  const { dataPath, notice } = upDataPath(options, { mode, bpfMissing });
  // One line for the user (the CLI prints it); a log event where nobody prints it.
  if (notice !== undefined && options.onNotice) options.onNotice(notice);
  else if (notice !== undefined) options.log?.warn({ event: 'dataPathFallback', bpfMissing, dataPath }, notice);
  const topology = buildTopology({ ...options, ...dataPath });
  return {
    version: 1,
    id: topology.id,
    runtime,
    mode,
    controlSlot: topology.controlSlot,
    etcdMembers: topology.control.etcdMembers.length,
    ...topology.dataPath,
    ...(topology.bgp.bfd ? { bfd: topology.bgp.bfd } : {}),
    clients: hostsOfKind(topology, 'client').length,
    backends: hostsOfKind(topology, 'backend').length,
    nodeIndexes: [...topology.nodeIndexes],
    killed: [],
    pids: {},
    createdAt: new Date().toISOString(),
  };
}
