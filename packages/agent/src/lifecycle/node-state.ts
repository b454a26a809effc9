/**
 * The node's lifecycle. Announcing is allowed only in `serving`; `draining` runs RFC 8326 graceful shutdown then
 * withdraws; `drained` keeps forwarding with nothing announced (flows the router still sends keep working);
 * `stopping` is the SIGTERM path after the drain, waiting for the router to move the flows before exit.
 *
 *   starting --ready--> serving --drain--> draining --drained--> drained --undrain--> serving
 *   starting --ready(drain flag)--> drained           any --stop--> stopping --stopped--> stopped
 */
export type NodeState = 'starting' | 'serving' | 'draining' | 'drained' | 'stopping' | 'stopped';

export type NodeEvent =
  | { readonly type: 'ready'; readonly drained: boolean }
  | { readonly type: 'drain' }
  | { readonly type: 'drained' }
  | { readonly type: 'undrain' }
  | { readonly type: 'stop' }
  | { readonly type: 'stopped' };

/** The next state, or the same state when the event does not apply (e.g. undrain while serving). */
export function nextNodeState(state: NodeState, ev: NodeEvent): NodeState {
  if (state === 'stopped') return state;
  if (ev.type === 'stop') return state === 'stopping' ? state : 'stopping';
  if (ev.type === 'stopped') return state === 'stopping' ? 'stopped' : state;
  if (state === 'stopping') return state; // nothing re-announces on the way out
  switch (ev.type) {
    case 'ready':
      return state === 'starting' ? (ev.drained ? 'drained' : 'serving') : state;
    case 'drain':
      return state === 'serving' ? 'draining' : state === 'starting' ? 'drained' : state;
    case 'drained':
      return state === 'draining' ? 'drained' : state;
    case 'undrain':
      return state === 'draining' || state === 'drained' ? 'serving' : state;
  }
}

/** Whether VIPs may be announced in `state`. */
export function mayAnnounce(state: NodeState): boolean {
  return state === 'serving';
}
