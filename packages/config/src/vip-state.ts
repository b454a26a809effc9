/**
 * The fleet file's `state` of a VIP: whether the fleet serves it. A classic L4 switch's "disable virtual server",
 * for an anycast fleet: `disabled` keeps the VIP's definition (address, pool, table size, profile, sourceRanges) in
 * the fleet, and every node stops serving it: its tables leave the data plane and, unless another served VIP shares
 * the address, every node withdraws the address's route (one host route per address, RFC 4271 UPDATE), so the
 * router stops sending its traffic. Its open flows end: nothing forwards them any more. `enabled` serves it again
 * with the table it had (same seed, same members: flows land where they landed before).
 *
 * Uses: stage a VIP before it goes live (its pool's health checks run, `describe vip` shows the members' state, then
 * `l4fleet vip enable`), take a service off the fleet for maintenance without losing its settings, or stop
 * announcing a VIP that another site must take (its router then prefers the other site's announcement).
 *
 * `draining` is the graceful way there (F5's disabled virtual server: open connections continue, new ones are
 * refused): every node keeps announcing the VIP and its table (table.ts: the slots it had enabled), and its data plane
 * opens no flow on it (@l4fleet/dataplane VipTable.draining): a TCP SYN, and a UDP packet of a flow the node does not
 * remember, are dropped (`noBackend`). A TCP segment of an open connection keeps its remembered backend, or on a node
 * that does not remember it (ECMP moved the flow there: a node added, drained or lost) takes the table's, which is
 * where its socket is (Maglev §3.3: every node has the same table). A UDP flow ECMP moves ends: nothing tells its next
 * datagram from a new flow's. When its traffic has ended the operator disables it.
 *
 * The pool's members keep being probed while a VIP is disabled (when it is enabled again the decided status is
 * current, not "no decision = up"), and the pool's table history keeps being recorded.
 */
import { type Problems, showValue } from './fields.js';
import type { Fleet, Vip, VipState } from './types.js';
import { vipKey } from './vip-key.js';

export const VIP_STATES: readonly VipState[] = ['enabled', 'draining', 'disabled'];

/**
 * Parses `vips[i].state`: `{}` when absent or `enabled` (the default, not written back, so a fleet that disables
 * nothing stays readable by nodes that predate the field), `{state}` otherwise.
 */
export function vipStateField(p: Problems, path: string, v: unknown): { state?: 'draining' | 'disabled' } {
  if (v === undefined || v === 'enabled') return {};
  if (v !== 'disabled' && v !== 'draining') {
    p.add(path, `${showValue(v)} is not one of ${VIP_STATES.join(' | ')}`);
    return {};
  }
  return { state: v };
}

/** The VIP's state (absent: `enabled`). */
export function vipStateOf(vip: Pick<Vip, 'state'>): VipState {
  return vip.state ?? 'enabled';
}

/** True when nodes serve the VIP (its state is not `disabled`): it has a table and is announced. */
export function vipServed(vip: Pick<Vip, 'state'>): boolean {
  return vip.state !== 'disabled';
}

/** True while the VIP drains: announced, its table kept, and nodes refuse its new flows (see the module comment). */
export function vipDraining(vip: Pick<Vip, 'state'>): boolean {
  return vip.state === 'draining';
}

/** The VIPs nodes serve, in file order: the one filter every node and the CLI apply. */
export function servedVips(fleet: Pick<Fleet, 'vips'>): readonly Vip[] {
  return fleet.vips.every(vipServed) ? fleet.vips : fleet.vips.filter(vipServed);
}

/**
 * The VIP with `state` set (enabled is written as no field), or `{unchanged}` when it is in that state already: the
 * one edit behind `l4fleet vip enable|drain|disable` and the dashboard's VIP actions.
 */
export function withVipState(vip: Vip, state: VipState): Vip | { readonly unchanged: string } {
  if (vipStateOf(vip) === state) return { unchanged: `vip ${vipKey(vip)} is ${state} already` };
  const { state: _old, ...rest } = vip;
  return state === 'enabled' ? rest : { ...rest, state };
}
