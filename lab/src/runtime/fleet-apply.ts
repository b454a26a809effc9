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

/** The fleet file applyDefaultFleet writes for lab `id`. */
export function labFleetFile(id: string): string {
  return join(labDir(id), 'fleet.yaml');
}

/** A fleet applied by applyDefaultFleet: its file and apply's output (the diff). */
export interface AppliedFleet {
  readonly file: string;
  readonly output: string;
}

/**
 * Writes the fleet of the lab's current topology (every backend in every pool) and applies it; returns apply's output.
 * Callers hold the lab's lock (lock.ts) with `lab` read under it: from a topology read before, two add-backends could
 * apply in the wrong order (the later one's backend left out of the fleet), and a `down` could remove the directory.
 */
export async function applyDefaultFleet(lab: { readonly id: string; readonly topology: Topology }): Promise<string> {
  const file = labFleetFile(lab.id);
  writeFileSync(file, labFleetYaml(lab.topology));
  const etcd = lab.topology.control.etcdEndpoints.join(',');
  const r = await run([process.execPath, cliBin(), '--etcd', etcd, 'apply', '-f', file, '--new-fleet'], {
    timeoutMs: 60_000,
  });
  return r.stdout;
}
