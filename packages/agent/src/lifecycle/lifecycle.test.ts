import { twoPoolFleet } from '@l4fleet/test-support/fleets';
import pino from 'pino';
import { describe, expect, test } from 'vitest';
import { createManualClock } from '../clock.js';
import { createAgentMetrics } from '../observe/metrics.js';
import { createServedInputs } from '../serve/inputs.js';
import { createLifecycle, DRAIN_ANNOUNCE_WAIT_MS, DRAIN_PASS_WAIT_MAX_MS } from './lifecycle.js';

const GRACEFUL_MS = 2_000;

function setup() {
  const clock = createManualClock();
  const inputs = createServedInputs();
  const seen: string[] = [];
  const lifecycle = createLifecycle({
    node: 'n1',
    inputs,
    clock,
    gracefulShutdownMs: GRACEFUL_MS,
    metrics: createAgentMetrics({ node: 'n1', fleet: 'default', defaultMetrics: false }),
    logger: pino({ level: 'silent' }),
    onTransition: (state, previous, reason) => seen.push(`${previous}->${state}${reason ? ` (${reason})` : ''}`),
  });
  return { clock, inputs, lifecycle, seen };
}

describe('lifecycle - on the injected clock', () => {
  test('ready only once every input is known; a drain lasts the graceful-shutdown window from its announcement', async () => {
    const { clock, inputs, lifecycle, seen } = setup();
    inputs.setDesired({ fleet: twoPoolFleet({ type: 'none' }), revision: 3, generation: 'g' });
    lifecycle.maybeReady();
    inputs.setDecided(new Map(), new Map());
    lifecycle.maybeReady();
    expect(lifecycle.state).toBe('starting'); // no node list yet
    inputs.setNodes(false);
    lifecycle.followDrainWish();
    expect(lifecycle.state).toBe('starting'); // no table history yet (second chance: previous owners)
    inputs.setHistory(new Map());
    lifecycle.maybeReady();
    expect(lifecycle.state).toBe('serving');

    lifecycle.setLocalDrain(true);
    expect(lifecycle.routeMode()).toBe('draining');
    // A pass still running holds the announcement: the window has not started.
    await clock.advance(GRACEFUL_MS * 2);
    expect(lifecycle.state).toBe('draining');
    lifecycle.drainAnnounced();
    await clock.advance(GRACEFUL_MS - 1);
    lifecycle.drainAnnounced(); // a later pass says it again: the window does not restart
    expect(lifecycle.state).toBe('draining');
    await clock.advance(1);
    expect(lifecycle.state).toBe('drained');
    expect(lifecycle.routeMode()).toBe('withdrawn');
    expect(seen).toEqual([
      'starting->serving',
      'serving->draining (local)',
      'draining->drained (gracefulShutdownElapsed)',
    ]);
  });

  test('a drain whose announcement never goes out still ends (the window starts DRAIN_ANNOUNCE_WAIT_MS after its pass began)', async () => {
    const { clock, inputs, lifecycle, seen } = setup();
    inputs.setDesired({ fleet: twoPoolFleet({ type: 'none' }), revision: 3, generation: 'g' });
    inputs.setDecided(new Map(), new Map());
    inputs.setNodes(false);
    inputs.setHistory(new Map());
    lifecycle.maybeReady();
    lifecycle.beginShutdown();
    lifecycle.drainPassBegan();
    const drained = lifecycle.drained().then(() => 'drained');
    await clock.advance(DRAIN_ANNOUNCE_WAIT_MS + GRACEFUL_MS - 1);
    expect(lifecycle.state).toBe('draining');
    await clock.advance(1);
    await clock.advance(100); // drained() looks every 50 ms
    expect(await drained).toBe('drained');
    lifecycle.stop('sigterm');
    lifecycle.stopped();
    expect(seen.slice(-3)).toEqual([
      'draining->drained (gracefulShutdownElapsed)',
      'drained->stopping (sigterm)',
      'stopping->stopped (closed)',
    ]);
  });

  test('announced after the fallback started the window (gobgpd took it 6.5 s late): the whole window from then', async () => {
    const { clock, inputs, lifecycle } = setup();
    inputs.setDesired({ fleet: twoPoolFleet({ type: 'none' }), revision: 3, generation: 'g' });
    inputs.setDecided(new Map(), new Map());
    inputs.setNodes(false);
    inputs.setHistory(new Map());
    lifecycle.maybeReady();
    lifecycle.setLocalDrain(true);
    lifecycle.drainPassBegan();
    await clock.advance(DRAIN_ANNOUNCE_WAIT_MS + 1_500); // the set was pending (gobgpd away) 6.5 s
    lifecycle.drainAnnounced(); // GRACEFUL_SHUTDOWN goes out now
    await clock.advance(GRACEFUL_MS - 1);
    expect(lifecycle.state).toBe('draining');
    lifecycle.drainAnnounced(); // a later pass saying it again does not restart it
    await clock.advance(1);
    expect(lifecycle.state).toBe('drained');
  });

  // A verify (or a pass) holding the reconciler's queue when the drain began: the fallback ran from the drain, the
  // window ran out behind the verify, and the queued pass withdrew without GRACEFUL_SHUTDOWN ever sent.
  test('the fallback runs from the first draining pass, not from the drain: a queue held 10 s does not use it up', async () => {
    const { clock, inputs, lifecycle } = setup();
    inputs.setDesired({ fleet: twoPoolFleet({ type: 'none' }), revision: 3, generation: 'g' });
    inputs.setDecided(new Map(), new Map());
    inputs.setNodes(false);
    inputs.setHistory(new Map());
    lifecycle.maybeReady();
    lifecycle.beginShutdown();
    await clock.advance(10_000); // a verify holds the queue
    expect(lifecycle.routeMode()).toBe('draining');
    lifecycle.drainPassBegan();
    lifecycle.drainPassBegan(); // a second draining pass (the set pending) does not move the fallback
    await clock.advance(DRAIN_ANNOUNCE_WAIT_MS + GRACEFUL_MS - 1);
    expect(lifecycle.state).toBe('draining');
    await clock.advance(1);
    expect(lifecycle.state).toBe('drained');
  });

  test('no draining pass within DRAIN_PASS_WAIT_MAX_MS (the queue stuck): the window starts anyway, the drain ends', async () => {
    const { clock, inputs, lifecycle } = setup();
    inputs.setDesired({ fleet: twoPoolFleet({ type: 'none' }), revision: 3, generation: 'g' });
    inputs.setDecided(new Map(), new Map());
    inputs.setNodes(false);
    inputs.setHistory(new Map());
    lifecycle.maybeReady();
    lifecycle.beginShutdown();
    await clock.advance(DRAIN_PASS_WAIT_MAX_MS + GRACEFUL_MS - 1);
    expect(lifecycle.state).toBe('draining');
    await clock.advance(1);
    expect(lifecycle.state).toBe('drained');
  });

  test('whenReady times out on the clock, and resolves once a pass programmed the data plane', async () => {
    const { clock, lifecycle } = setup();
    const late = lifecycle.whenReady(500);
    const outcome = late.then(
      () => 'ready',
      (err: Error) => err.message,
    );
    await clock.advance(500);
    expect(await outcome).toBe('node n1 ready: no answer within 500 ms');
    const waiting = lifecycle.whenReady(500);
    expect(lifecycle.markReady()).toBe(true);
    await expect(waiting).resolves.toBeUndefined();
    expect(lifecycle.markReady()).toBe(false);
  });
});
