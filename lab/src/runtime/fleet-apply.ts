/**
 * Applying the lab's default fleet (deploy/examples/lab-fleet.yaml, generated from the topology) to the lab's etcd
 * through the `l4fleet` CLI, so the lab exercises the same path a user takes. Agent mode only: in static mode nothing
 * reads the fleet (the static forwarder is not Maglev), and `explain flow` would then predict wrong backends.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '@l4fleet/process';
import { labFleetYaml } from '../topology/fleet.js';
import type { Topology } from '../topology/model.js';
import { cliBin } from './agent.js';
import { labDir } from './state.js';

/** Writes the fleet of the lab's current topology (every backend in every pool) and applies it; returns apply's output. */
export async function applyDefaultFleet(lab: { readonly id: string; readonly topology: Topology }): Promise<string> {
  const file = join(labDir(lab.id), 'fleet.yaml');
  writeFileSync(file, labFleetYaml(lab.topology));
  const etcd = lab.topology.control.etcdEndpoints.join(',');
  const r = await run([process.execPath, cliBin(), '--etcd', etcd, 'apply', '-f', file, '--new-fleet'], {
    timeoutMs: 60_000,
  });
  return r.stdout;
}
