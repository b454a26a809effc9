import { twoPoolFleet } from '@l4fleet/test-support/fleets';
import pino from 'pino';
import { describe, expect, test } from 'vitest';
import { createManualClock } from '../clock.js';
import { createAgentMetrics } from '../observe/metrics.js';
import { createServedInputs } from '../serve/inputs.js';
import { createLifecycle, DRAIN_ANNOUNCE_WAIT_MS } from './lifecycle.js';

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

  test('a drain whose announcement never goes out still ends (the window starts after DRAIN_ANNOUNCE_WAIT_MS)', async () => {
    const { clock, inputs, lifecycle, seen } = setup();
    inputs.setDesired({ fleet: twoPoolFleet({ type: 'none' }), revision: 3, generation: 'g' });
    inputs.setDecided(new Map(), new Map());
    inputs.setNodes(false);
    inputs.setHistory(new Map());
    lifecycle.maybeReady();
    lifecycle.beginShutdown();
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

  test('announced after the fallback started the window (a pass slower than 5 s before it): the whole window from then', async () => {
    const { clock, inputs, lifecycle } = setup();
    inputs.setDesired({ fleet: twoPoolFleet({ type: 'none' }), revision: 3, generation: 'g' });
    inputs.setDecided(new Map(), new Map());
    inputs.setNodes(false);
    inputs.setHistory(new Map());
    lifecycle.maybeReady();
    lifecycle.setLocalDrain(true);
    await clock.advance(DRAIN_ANNOUNCE_WAIT_MS + 1_500); // the pass before the draining one took 6.5 s
    lifecycle.drainAnnounced(); // GRACEFUL_SHUTDOWN goes out now
    await clock.advance(GRACEFUL_MS - 1);
    expect(lifecycle.state).toBe('draining');
    lifecycle.drainAnnounced(); // a later pass saying it again does not restart it
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
