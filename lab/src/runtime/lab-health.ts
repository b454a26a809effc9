/** Whether a lab is up and whole (lab.ts): `up` returns a healthy lab as it is and rebuilds any other. */
import { namespacePids } from '@l4fleet/process';
import type { Topology } from '../topology/model.js';
import { listLabResources } from './resources.js';
import type { LabState } from './state.js';

/** What labHealthy reads of the lab. */
export interface HealthView {
  readonly id: string;
  readonly state: LabState;
  readonly topology: Topology;
  ns(host: string): string;
}

/** Every recorded process alive and every namespace present. */
export async function labHealthy(lab: HealthView): Promise<boolean> {
  const { state } = lab;
  // A lab whose `up` never finished (crash, timeout) is not healthy, however alive its processes are.
  if (!state.upAt) return false;
  const { namespaces } = await listLabResources(lab.id);
  for (const h of lab.topology.hosts) if (h.namespace && !namespaces.includes(h.namespace)) return false;
  for (const [host, roles] of Object.entries(state.pids)) {
    if (state.killed.includes(host)) continue;
    const running = await namespacePids(lab.ns(host));
    // A killed etcd member is a role of the control host.
    for (const [role, pid] of Object.entries(roles)) {
      if (!state.killed.includes(role) && !running.includes(pid)) return false;
    }
  }
  return true;
}
