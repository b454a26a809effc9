/** The lab's backends: add one, fail one (everything in it dies), restore one. */
import { killAll, namespacePids } from '@l4fleet/process';
import { backendName } from '../topology/model.js';
import { type LabCore, markAlive, markKilled, requireKind } from './lab-core.js';
import { appendEvent } from './state.js';

/**
 * Adds the next backend (identity server running); the fleet is not changed: `lab add-backend` applies the lab
 * fleet with it (`l4fleet apply`), or add it to a pool with `l4fleet member add`.
 */
export async function addBackend(core: LabCore): Promise<string> {
  const name = backendName(core.state.backends + 1);
  core.setHosts({ nodeIndexes: core.state.nodeIndexes, backends: core.state.backends + 1 });
  await core.runtime.startHost(core, name);
  appendEvent(core.id, { event: 'backendAdded', host: name });
  return name;
}

/**
 * Fails a backend: everything in it dies (the identity server; in Docker its container), so its port refuses
 * connections, health checks mark it down and its TCP connections are reset. `restoreBackend` brings it back.
 */
export async function failBackend(core: LabCore, name: string): Promise<void> {
  requireKind(core, name, 'backend');
  await killAll(await namespacePids(core.ns(name)));
  markKilled(core, name);
  appendEvent(core.id, { event: 'backendFailed', host: name });
}

/** Starts a backend's service again (also one that was not failed: it is restarted); health checks see it rise. */
export async function restoreBackend(core: LabCore, name: string): Promise<void> {
  requireKind(core, name, 'backend');
  await killAll(await namespacePids(core.ns(name)));
  await core.runtime.restoreService(core, name);
  markAlive(core, [name]);
  appendEvent(core.id, { event: 'backendRestored', host: name });
}
