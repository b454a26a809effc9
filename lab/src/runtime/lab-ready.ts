/** The wait at the end of `lab up` (lab.ts) until the lab is ready. */
import { hostsOfKind } from '../topology/model.js';
import { applyDefaultFleet } from './fleet-apply.js';
import type { LabCore } from './lab-core.js';
import { waitEtcd, waitNats, waitNextHops, waitVipsAnswer } from './readiness.js';

/**
 * Ready: etcd and NATS answer, (agent mode) the default fleet is applied, the router has one next hop per live
 * node, and every VIP answers the client. Any daemon of the lab that exits meanwhile ends the wait, named. The
 * deadline runs on a steady clock (performance.now()): on the wall clock an NTP step forward left every wait 1 s (a
 * false TIMEOUT in `up`), a step back gave them an hour more.
 */
export async function waitLabReady(lab: LabCore, timeoutMs: number): Promise<void> {
  const deadlineMs = performance.now() + timeoutMs;
  // Whole ms: a wait that times out names it.
  const left = () => Math.max(1_000, Math.round(deadlineMs - performance.now()));
  const giveUp = lab.giveUp();
  await waitEtcd(lab.topology, left(), lab.topology.control.etcdMembers, giveUp);
  await waitNats(lab.topology.control.natsUrl, left(), giveUp);
  if (lab.mode === 'agent') await applyDefaultFleet(lab);
  const live = hostsOfKind(lab.topology, 'node').filter((n) => !lab.state.killed.includes(n.name));
  await waitNextHops(lab.topology, live.length, left(), giveUp);
  await waitVipsAnswer(lab.topology, left(), giveUp);
}
