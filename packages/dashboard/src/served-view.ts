/**
 * The view the pages are served: each rebuilt view is sent to the open streams (serialised once, sse.ts) and served
 * from then on (to pages that connect, and `/api/state`). One that cannot be serialised (a view past what a
 * JavaScript string holds: `RangeError: Invalid string length`) would throw inside the rebuild timer, where nothing
 * catches it, and end the dashboard; it is neither sent nor served, the pages keep the last good view, marked with a
 * problem saying since when it is not updated and why (held-view.ts), and the failure is logged at most once a minute
 * (warn-every.ts), as for bad stored input.
 */
import { type Clock, systemClock } from '@l4fleet/agent';
import type { Logger } from 'pino';
import { createHoldBack } from './held-view.js';
import type { LiveFleet } from './live-fleet.js';
import type { SseHub } from './sse.js';
import { warnEvery } from './warn-every.js';

/**
 * `fleet` with view() the last view sent, or while one is held back, that view with a problem saying since when and
 * why (held-view.ts), sent too so the open pages show it: it serialised before, and the line is short. close() also
 * stops sending. The first view (built when the fleet opened) is served as it is: nothing has been sent yet to
 * compare it with.
 */
export function serveViews(
  fleet: LiveFleet,
  hub: Pick<SseHub, 'broadcast'>,
  logger: Logger,
  clock: Pick<Clock, 'monoMs' | 'now'> = systemClock,
): LiveFleet {
  /** The last view sent. */
  let sent = fleet.view();
  let served = sent;
  const warn = warnEvery(logger, () => clock.monoMs());
  const holdBack = createHoldBack(() => clock.now());
  const unsubscribe = fleet.subscribe((view) => {
    try {
      hub.broadcast('view', view);
      sent = view;
      served = view;
      holdBack.clear();
    } catch (err) {
      warn('viewNotSent', err);
      const held = holdBack.held(sent, err);
      if (held === undefined) return;
      try {
        hub.broadcast('view', held);
        served = held;
      } catch {
        // Not expected (the view it marks was sent); the failure is logged above, the view served stays.
      }
    }
  });
  return {
    view: () => served,
    inputs: () => fleet.inputs(),
    subscribe: (listener) => fleet.subscribe(listener),
    async close() {
      unsubscribe();
      await fleet.close();
    },
  };
}
