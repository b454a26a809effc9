import { describe, expect, test } from 'vitest';
import {
  BFD_REACTION_MS,
  bfdTimersUp,
  HOLD_REACTION_MS,
  parseRouterBfdTimers,
  pollRouteWithout,
  QUIET_PAUSE_CAP_MS,
  quietPauseBoundMs,
  RESUME_SLACK_MS,
  resumeBoundMs,
  routerDropBoundMs,
} from './lab-kill.js';

const NODE1 = '198.18.2.11';
const NODE2 = '198.18.2.12';
const NODE3 = '198.18.2.13';

/**
 * A fake clock and a route that changes at set times: each read takes `readMs` of the clock and returns the route as
 * it was when the read began; sleeping advances the clock. Returns the reader, the clock and the reads' start times.
 */
function fakeRoute(changes: readonly { atMs: number; hops: string[] }[], readMs: number) {
  let now = 0;
  const readStarts: number[] = [];
  const read = async () => {
    readStarts.push(now);
    const route = [...changes].reverse().find((c) => c.atMs <= now)?.hops ?? [];
    now += readMs;
    return route;
  };
  const clock = {
    now: () => now,
    sleep: async (ms: number) => {
      now += ms;
    },
  };
  return { read, clock, readStarts };
}

describe('lab kill - the bounds', () => {
  test.each([
    ['BFD 100 ms x 3', { holdTimeS: 3, bfd: { intervalMs: 100, multiplier: 3 } }, 300 + BFD_REACTION_MS],
    ['BFD 200 ms x 3', { holdTimeS: 3, bfd: { intervalMs: 200, multiplier: 3 } }, 600 + BFD_REACTION_MS],
    ['no BFD: the 3 s hold time', { holdTimeS: 3, bfd: undefined }, 3_000 + HOLD_REACTION_MS],
  ])('the router drop bound, %s', (_name, bgp, bound) => {
    expect(routerDropBoundMs(bgp)).toBe(bound);
  });

  test('a BFD drop bound stays a third of the hold time: a node the hold timer dropped fails it', () => {
    expect(routerDropBoundMs({ holdTimeS: 3, bfd: { intervalMs: 100, multiplier: 3 } })).toBeLessThanOrEqual(1_000);
    expect(BFD_REACTION_MS).toBeGreaterThanOrEqual(500);
  });

  test('the pause bound: the next retransmission after the drop, 2 x drop + the slack', () => {
    expect(resumeBoundMs(434)).toBe(868 + RESUME_SLACK_MS);
  });

  // A 3 s stall in the quiet window must not let a 3.4 s one in the step pass (quiet + 500 ms alone would).
  test.each([
    [82, 582],
    [2_500, 3_000],
    [3_000, QUIET_PAUSE_CAP_MS],
    [4_000, QUIET_PAUSE_CAP_MS],
  ])('the control-plane step bound over a quiet window that paused %d ms: %d ms', (quietMs, bound) => {
    expect(quietPauseBoundMs(quietMs)).toBe(bound);
  });
});

describe('lab kill - polling the router until the route lacks the node', () => {
  const opts = (clock: { now: () => number; sleep: (ms: number) => Promise<void> }) => ({
    timeoutMs: 10_000,
    intervalMs: 100,
    ...clock,
  });

  test("the drop is stamped at the start of the read that saw the route without the node, not at the read's end", async () => {
    // Each read takes 250 ms (a loaded VM); the route loses node2 at 500 ms.
    const { read, clock, readStarts } = fakeRoute(
      [
        { atMs: 0, hops: [NODE1, NODE2, NODE3] },
        { atMs: 500, hops: [NODE1, NODE3] },
      ],
      250,
    );
    const r = await pollRouteWithout(read, NODE2, 2, opts(clock));
    // Reads at 0, 350, 700: the third saw it.
    expect(readStarts).toEqual([0, 350, 700]);
    expect(r).toEqual({ droppedAtMs: 700, hops: [NODE1, NODE3] });
  });

  test('the route losing the node is what counts, not its number of next hops', async () => {
    // node3 leaves first (3 -> 2 next hops, node2 still in), node2 later: waiting for 2 next hops stopped at the first.
    const { read, clock } = fakeRoute(
      [
        { atMs: 0, hops: [NODE1, NODE2, NODE3] },
        { atMs: 300, hops: [NODE1, NODE2] },
        { atMs: 900, hops: [NODE1] },
        { atMs: 1_500, hops: [NODE1, NODE3] },
      ],
      50,
    );
    const r = await pollRouteWithout(read, NODE2, 2, opts(clock));
    // Dropped at the first read without node2 (900 ms: reads every 150 ms); the hops once node3 was back.
    expect(r).toEqual({ droppedAtMs: 900, hops: [NODE1, NODE3] });
  });

  test('an empty route (the whole prefix gone for a moment) is not the node dropped', async () => {
    const { read, clock } = fakeRoute(
      [
        { atMs: 0, hops: [NODE1, NODE2, NODE3] },
        { atMs: 200, hops: [] },
        { atMs: 600, hops: [NODE1, NODE3] },
      ],
      0,
    );
    expect(await pollRouteWithout(read, NODE2, 2, opts(clock))).toEqual({ droppedAtMs: 600, hops: [NODE1, NODE3] });
  });

  test('a route that keeps the node: an error naming it and the timeout', async () => {
    const { read, clock } = fakeRoute([{ atMs: 0, hops: [NODE1, NODE2, NODE3] }], 20);
    await expect(pollRouteWithout(read, NODE2, 2, opts(clock))).rejects.toThrow(
      `the router still routes via ${NODE2} after 10000 ms (last next hops: ${NODE1}, ${NODE2}, ${NODE3})`,
    );
  });

  test('dropped, but never down to the nodes left: an error with the drop time', async () => {
    const { read, clock } = fakeRoute(
      [
        { atMs: 0, hops: [NODE1, NODE2, NODE3] },
        { atMs: 400, hops: [NODE1] },
      ],
      0,
    );
    await expect(pollRouteWithout(read, NODE2, 2, opts(clock))).rejects.toThrow(
      `the router dropped ${NODE2} at 400 ms but did not route over 2 next hops within 10000 ms (last: ${NODE1})`,
    );
  });
});

describe("lab kill - the router's negotiated BFD timers (show bfd peers json, FRR 8.4)", () => {
  const peer = (address: string, timers: Record<string, number>) => ({
    multihop: false,
    peer: address,
    local: '198.18.2.1',
    id: 1,
    'remote-id': 2,
    status: 'up',
    uptime: 12,
    diagnostic: 'ok',
    'remote-diagnostic': 'ok',
    'receive-interval': 100,
    'transmit-interval': 100,
    'echo-receive-interval': 50,
    'echo-transmit-interval': 0,
    'detect-multiplier': 3,
    'remote-receive-interval': 100,
    'remote-transmit-interval': 100,
    'remote-echo-receive-interval': 50,
    'remote-detect-multiplier': 3,
    ...timers,
  });
  const nodes = { node1: NODE1, node2: NODE2, node3: NODE3 };

  test("each node's session: the router's receive interval and multiplier, and its detection time per RFC 5880 §6.8.4", () => {
    const json = JSON.stringify([
      peer(NODE1, {}),
      // The node transmits slower than the router asks: the router waits 3 x 200 ms.
      peer(NODE2, { 'remote-transmit-interval': 200 }),
      // The node asks a multiplier of 5: the router detects after 5 x 100 ms (its own multiplier is the node's).
      peer(NODE3, { 'remote-detect-multiplier': 5 }),
      peer('198.18.2.14', {}),
    ]);
    expect(parseRouterBfdTimers(json, nodes)).toEqual({
      node1: { status: 'up', receiveIntervalMs: 100, detectMultiplier: 3, detectionMs: 300 },
      node2: { status: 'up', receiveIntervalMs: 100, detectMultiplier: 3, detectionMs: 600 },
      node3: { status: 'up', receiveIntervalMs: 100, detectMultiplier: 3, detectionMs: 500 },
    });
  });

  test('a router configured at 200 ms x 3 shows it (a bound of 300 ms + reaction passed it)', () => {
    const json = JSON.stringify([
      peer(NODE1, { 'receive-interval': 200, 'transmit-interval': 200, 'remote-transmit-interval': 200 }),
    ]);
    const timers = parseRouterBfdTimers(json, { node1: NODE1 });
    expect(timers).toEqual({ node1: { status: 'up', receiveIntervalMs: 200, detectMultiplier: 3, detectionMs: 600 } });
    // What the BFD lab tests expect of every node: this router fails it.
    expect(timers).not.toEqual({ node1: bfdTimersUp({ intervalMs: 100, multiplier: 3 }) });
    expect(bfdTimersUp({ intervalMs: 100, multiplier: 3 })).toEqual({
      status: 'up',
      receiveIntervalMs: 100,
      detectMultiplier: 3,
      detectionMs: 300,
    });
  });

  test('a node without a session, and fields missing: undefined, never a default', () => {
    const json = JSON.stringify([{ peer: NODE1, status: 'down' }]);
    expect(parseRouterBfdTimers(json, { node1: NODE1, node2: NODE2 })).toEqual({
      node1: { status: 'down', receiveIntervalMs: undefined, detectMultiplier: undefined, detectionMs: undefined },
      node2: undefined,
    });
  });
});
