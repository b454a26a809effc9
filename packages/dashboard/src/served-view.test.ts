/** The view the pages are served: each one the streams could be sent, never one that cannot be serialised. */
import { createManualClock } from '@l4fleet/agent';
import pino from 'pino';
import { describe, expect, test, vi } from 'vitest';
import type { FleetView } from './fleet-view.js';
import type { LiveFleet } from './live-fleet.js';
import { serveViews } from './served-view.js';
import { createSseHub, sseRecord } from './sse.js';

/** A view as far as these tests look at it: its revision. */
const viewAt = (revision: number) => ({ revision, problems: [] }) as unknown as FleetView;
/** A view whose JSON is past what a string holds (as 130,000 members of 64 nodes were). */
const tooLarge = (revision: number) =>
  ({
    revision,
    problems: [],
    toJSON() {
      throw new RangeError('Invalid string length');
    },
  }) as unknown as FleetView;

/** A live fleet the test drives: `rebuilt` is what its rebuild timer does with a new view. */
function fakeFleet(first: FleetView) {
  let current = first;
  const listeners = new Set<(v: FleetView) => void>();
  const fleet: LiveFleet = {
    view: () => current,
    inputs: () => {
      throw new Error('not used');
    },
    subscribe(l) {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    close: vi.fn(async () => undefined),
  };
  const rebuilt = (v: FleetView) => {
    current = v;
    for (const l of listeners) l(v);
  };
  return { fleet, rebuilt, listeners };
}

describe('served view', () => {
  test('a view that cannot be serialised is not sent or served: the last good one stays (marked), one warning a minute', async () => {
    const clock = createManualClock();
    const log = pino({ level: 'silent' });
    const warn = vi.spyOn(log, 'warn');
    const hub = createSseHub();
    const { fleet, rebuilt, listeners } = fakeFleet(viewAt(1));
    const served = serveViews(fleet, hub, log, clock);
    try {
      expect(served.view().revision).toBe(1);
      rebuilt(viewAt(2));
      expect(served.view().revision).toBe(2);

      expect(() => rebuilt(tooLarge(3))).not.toThrow();
      rebuilt(tooLarge(4));
      expect(served.view()).toMatchObject({
        revision: 2,
        problems: [expect.stringMatching(/^view not updated since/)],
      });
      expect(warn.mock.calls).toEqual([[{ event: 'viewNotSent', err: 'Invalid string length', heldBack: 0 }]]);
      await clock.advance(60_000);
      rebuilt(tooLarge(5));
      expect(warn.mock.calls[1]).toEqual([{ event: 'viewNotSent', err: 'Invalid string length', heldBack: 1 }]);

      rebuilt(viewAt(6));
      expect(served.view()).toEqual(viewAt(6));
    } finally {
      await served.close();
      hub.close();
    }
    expect(listeners.size).toBe(0);
    expect(fleet.close).toHaveBeenCalledOnce();
  });

  test('while held back, the last good view is sent and served with a line saying since when and why; cleared by the next', async () => {
    const clock = createManualClock(Date.UTC(2026, 11, 6, 21, 0, 0));
    const sent: FleetView[] = [];
    // Serialises as the hub does, so a view that cannot be is refused here too.
    const hub = {
      broadcast(_event: string, data: unknown) {
        sseRecord('view', data);
        sent.push(data as FleetView);
      },
    };
    const { fleet, rebuilt } = fakeFleet(viewAt(1));
    const served = serveViews(fleet, hub, pino({ level: 'silent' }), clock);
    try {
      const good = { revision: 2, problems: ['node n1 still holds tables for VIPs the fleet does not serve: x'] };
      rebuilt(good as unknown as FleetView);
      await clock.advance(5_000);
      rebuilt(tooLarge(3));
      const held = {
        revision: 2,
        problems: ['view not updated since 2026-12-06T21:00:05.000Z: Invalid string length', ...good.problems],
      };
      expect(served.view()).toEqual(held);
      expect(sent).toEqual([good, held]); // the open pages show it too
      await clock.advance(3_600_000);
      rebuilt(tooLarge(4));
      expect(served.view()).toEqual(held); // since the first failure, not the latest
      expect(sent).toHaveLength(2);

      rebuilt(viewAt(5));
      expect(served.view()).toEqual(viewAt(5));
      expect(sent.at(-1)).toEqual(viewAt(5));
    } finally {
      await served.close();
    }
  });

  test('not sent, sent, not sent again with the same message: the line is shown again, since the new failure', async () => {
    const clock = createManualClock(Date.UTC(2026, 11, 6, 21, 0, 0));
    const hub = {
      broadcast(_event: string, data: unknown) {
        sseRecord('view', data);
      },
    };
    const { fleet, rebuilt } = fakeFleet(viewAt(1));
    const served = serveViews(fleet, hub, pino({ level: 'silent' }), clock);
    try {
      rebuilt(tooLarge(2));
      expect(served.view().problems).toEqual([
        'view not updated since 2026-12-06T21:00:00.000Z: Invalid string length',
      ]);
      await clock.advance(5_000);
      rebuilt(viewAt(3));
      expect(served.view()).toEqual(viewAt(3));
      await clock.advance(5_000);
      rebuilt(tooLarge(4));
      // A new hold: not the first one's line (told as nothing new, which would leave view 3 served unmarked).
      expect(served.view()).toEqual({
        revision: 3,
        problems: ['view not updated since 2026-12-06T21:00:10.000Z: Invalid string length'],
      });
    } finally {
      await served.close();
    }
  });
});
