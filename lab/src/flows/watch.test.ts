import { afterEach, describe, expect, test, vi } from 'vitest';
import { REPEAT_SIGNAL_WINDOW_MS } from '../interrupt.js';
import type { Lab } from '../runtime/lab.js';
import { buildTopology } from '../topology/model.js';
import { summarize } from './summary.js';
import type { FlowSample } from './types.js';
import { checkVerdict, DEFAULT_WATCH_MAX_PAUSE_MS, render, type WatchTick, watch } from './watch.js';

// watch() over a lab with no namespaces: flows, events and the router's next hops are stubbed. The flow worker reports
// `worker.flows`; once `worker.gone` names how it ended, summary() fails as FlowRun's does for a worker that exited.
const worker = vi.hoisted(() => ({ flows: [] as FlowSample[], gone: undefined as string | undefined }));
vi.mock('./run.js', () => ({
  FlowRun: {
    start: async () => ({
      summary: async () => {
        if (worker.gone !== undefined) throw new Error(`flow worker exited (${worker.gone})`);
        return summarize({ at: 0, markAt: 0, flows: worker.flows }, new Map());
      },
      stop: async () => ({ at: 0, markAt: 0, flows: [] }),
    }),
  },
}));
vi.mock('../runtime/state.js', async (importOriginal) => ({
  ...(await importOriginal<typeof import('../runtime/state.js')>()),
  readEvents: () => [],
}));
vi.mock('../runtime/status.js', async (importOriginal) => ({
  ...(await importOriginal<typeof import('../runtime/status.js')>()),
  routerNextHops: async () => [],
}));

afterEach(() => {
  vi.useRealTimers();
  worker.flows = [];
  worker.gone = undefined;
});

function flow(id: number, backend: string): FlowSample {
  return {
    id,
    protocol: 'tcp',
    localPort: 40000 + id,
    localAddress: '198.18.1.2',
    target: '198.51.100.10:80',
    backend,
    state: 'open',
    replies: 10,
    maxPauseMs: 50,
    openedAt: 1_000,
    backends: [backend],
  };
}

/** The view once node4 and backend5 were added and backend2 failed (all after `watch` started). */
function tick(): WatchTick {
  const report = { at: 9_000, markAt: 0, flows: [flow(1, 'backend1'), flow(2, 'backend3'), flow(3, 'backend1')] };
  const carriers = new Map([
    ['tcp:40001', 'node1'],
    ['tcp:40002', 'node4'],
    ['tcp:40003', 'node4'],
  ]);
  return {
    at: '2026-12-02T10:00:09.000Z',
    summary: summarize(report, carriers),
    nextHops: ['node1', 'node2', 'node3', 'node4'],
    events: [],
    nodes: ['node1', 'node2', 'node3', 'node4'],
    backends: ['backend1', 'backend2', 'backend3', 'backend4', 'backend5'],
    down: ['backend2'],
  };
}

const rows = (frame: string, first: string) =>
  frame
    .split('\n')
    .filter((l) => l.startsWith(first))
    .map((l) => l.replace(/\s+#*\s*/g, ' ').trim());

describe('lab watch - render', () => {
  test('names every node and backend of the tick, also ones without flows; no `?` row', () => {
    const frame = render({ id: 'lab', mode: 'agent' }, tick(), [], performance.now());
    expect(rows(frame, 'node')).toEqual(['node flows', 'node1 1', 'node2 0', 'node3 0', 'node4 2']);
    expect(rows(frame, 'backend')).toEqual([
      'backend flows',
      'backend1 2',
      'backend2 0 failed',
      'backend3 1',
      'backend4 0',
      'backend5 0',
    ]);
    expect(frame).not.toMatch(/^\?/m);
  });

  test('a node missing from the next hops is flagged; the timeline shows backend events', () => {
    const t = { ...tick(), nextHops: ['node1', 'node2', 'node4'] };
    const timeline = [
      { at: '2026-12-02T10:00:05.000Z', event: 'backendAdded', host: 'backend5' },
      { at: '2026-12-02T10:00:06.000Z', event: 'backendFailed', host: 'backend2' },
    ];
    const frame = render({ id: 'lab', mode: 'agent' }, t, timeline, performance.now());
    expect(rows(frame, 'node3')).toEqual(['node3 0 (not in ECMP)']);
    expect(frame).toContain('10:00:05  backendAdded backend5');
    expect(frame).toContain('10:00:06  backendFailed backend2');
  });
});

describe('lab watch - duration on a steady clock', () => {
  test('a wall clock stepped back an hour does not make --duration an hour longer', async () => {
    vi.useFakeTimers();
    const lab = { id: 'lab', mode: 'agent', topology: buildTopology(), killed: [], refresh: () => undefined };
    const frames: string[] = [];
    let done = false;
    void watch(lab as unknown as Lab, {
      tcpFlows: 1,
      udpFlows: 0,
      json: false,
      tickMs: 1_000,
      durationMs: 3_000,
      write: (text) => frames.push(text),
    }).then(() => {
      done = true;
    });
    await vi.advanceTimersByTimeAsync(1_000);
    expect(frames).toHaveLength(1);
    // NTP steps the wall clock back an hour (Date only: the timers and performance.now() go on).
    vi.setSystemTime(Date.now() - 3_600_000);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(done).toBe(true);
    expect(frames).toHaveLength(3);
    expect(frames.at(-1)).toContain(' up 3 s ');
  });
});

describe('lab watch - check verdict', () => {
  const summary = (maxPauseMs: number, broken = 0) => {
    const flows = [1, 2, 3].map((i) => ({ ...flow(i, 'backend1'), maxPauseMs }));
    if (broken) flows.push({ ...flow(4, 'backend2'), state: 'broken', reason: 'reset' });
    return summarize({ at: 9_000, markAt: 0, flows }, new Map());
  };

  test('a total outage shorter than the 15 s that break a flow fails the check, naming the pause and the bound', () => {
    const v = checkVerdict(summary(10_000), DEFAULT_WATCH_MAX_PAUSE_MS);
    expect(v.ok).toBe(false);
    expect(v.line).toBe(
      'watch --check: longest pause 10000 ms is more than --max-pause-ms 5000 (flows 3  open 3  broken 0  longest pause 10000 ms, bound 5000 ms)',
    );
  });

  test('a healthy run passes; broken flows and no open flow still fail', () => {
    expect(checkVerdict(summary(722), 5_000)).toEqual({
      ok: true,
      line: 'watch --check: ok (flows 3  open 3  broken 0  longest pause 722 ms, bound 5000 ms)',
    });
    expect(checkVerdict(summary(722, 1), 5_000).line).toMatch(/^watch --check: 1 flows broke \(/);
    const none = checkVerdict(summarize({ at: 0, markAt: 0, flows: [] }, new Map()), 5_000);
    expect(none).toMatchObject({ ok: false, line: expect.stringMatching(/^watch --check: no flow is open \(/) });
  });
});

describe('lab watch - stopped by a signal', () => {
  const lab = { id: 'lab', mode: 'agent', topology: buildTopology(), killed: [], refresh: () => undefined };

  /**
   * The handlers watch() added for `sig`, called directly (process.emit would reach the runner's too); raw, so that a
   * `once` handler removes itself as a signal's would.
   */
  function send(sig: NodeJS.Signals, before: Set<unknown>): void {
    for (const h of added(sig, before)) (h as (s: NodeJS.Signals) => void)(sig);
  }
  const added = (sig: NodeJS.Signals, before: Set<unknown>) => process.rawListeners(sig).filter((l) => !before.has(l));

  // `timeout 60 l4fleet lab watch`: SIGTERM to the lab, then to the whole group, so watch got it again forwarded by
  // `l4fleet lab`; with its handler gone after the first, the copy ended it by default, without its summary.
  test('the same signal twice at once (a process group, forwarded) stops it once: it ends with its summary', async () => {
    vi.useFakeTimers();
    const before = new Set<unknown>(process.rawListeners('SIGTERM'));
    const exits: number[] = [];
    const exit = ((code: number) => {
      exits.push(code);
    }) as (code: number) => never;
    const frames: string[] = [];
    let result: unknown;
    void watch(lab as unknown as Lab, {
      tcpFlows: 1,
      udpFlows: 0,
      json: true,
      tickMs: 1_000,
      write: (t) => frames.push(t),
      exit,
    }).then((r) => {
      result = r;
    });
    await vi.advanceTimersByTimeAsync(1_000);
    expect(frames).toHaveLength(1);
    send('SIGTERM', before);
    await vi.advanceTimersByTimeAsync(5);
    // Still handled: a signal with no listener left ends the process by its default action.
    expect(added('SIGTERM', before)).toHaveLength(1);
    send('SIGTERM', before);
    await vi.advanceTimersByTimeAsync(2_000);
    expect(exits).toEqual([]);
    expect(result).toMatchObject({ summary: { total: 0 } });
    expect(added('SIGTERM', before)).toEqual([]);
  });

  // SIGHUP (an ssh session that dropped, a terminal closed, `kill -HUP`) had no handler: Node's default ended watch
  // at once, without the summary or the --check verdict, and the flow worker lost its parent mid-run.
  test.each(['SIGINT', 'SIGTERM', 'SIGHUP'] as const)(
    '%s stops it: it ends with its summary, handler removed',
    async (sig) => {
      vi.useFakeTimers();
      const before = new Set<unknown>(process.rawListeners(sig));
      const exits: number[] = [];
      const exit = ((code: number) => {
        exits.push(code);
      }) as (code: number) => never;
      const frames: string[] = [];
      let result: unknown;
      void watch(lab as unknown as Lab, {
        tcpFlows: 1,
        udpFlows: 0,
        json: true,
        tickMs: 1_000,
        write: (t) => frames.push(t),
        exit,
      }).then((r) => {
        result = r;
      });
      await vi.advanceTimersByTimeAsync(1_000);
      expect(frames).toHaveLength(1);
      expect(added(sig, before), `no ${sig} handler: the signal's default action ends watch`).toHaveLength(1);
      send(sig, before);
      await vi.advanceTimersByTimeAsync(1_000);
      expect(exits).toEqual([]);
      expect(result).toMatchObject({ summary: { total: 0, broken: 0 } });
      expect(added(sig, before)).toEqual([]);
    },
  );

  // A terminal's Ctrl-C or hangup, `timeout` or a CI cancel signal the whole process group: the flow worker too, which
  // SIGINT and SIGHUP end and SIGTERM stops. The tick after the signal then failed on the worker's exit ('flow worker
  // exited'): watch ended with that error, exit 1, without its summary or the --check verdict.
  test.each([
    ['SIGINT', 'signal SIGINT'],
    ['SIGTERM', 'code 0'],
    ['SIGHUP', 'signal SIGHUP'],
  ] as const)(
    '%s to the process group ends the flow worker too: watch ends with the flows as last seen',
    async (sig, end) => {
      vi.useFakeTimers();
      worker.flows = [flow(1, 'backend1'), flow(2, 'backend2'), { ...flow(3, 'backend1'), state: 'broken' }];
      const before = new Set<unknown>(process.rawListeners(sig));
      const frames: string[] = [];
      const settled = watch(lab as unknown as Lab, {
        tcpFlows: 3,
        udpFlows: 0,
        json: true,
        tickMs: 1_000,
        write: (t) => frames.push(t),
        exit: (() => undefined) as unknown as (code: number) => never,
      }).catch((e: unknown) => e);
      await vi.advanceTimersByTimeAsync(1_000);
      expect(frames).toHaveLength(1);
      send(sig, before);
      worker.gone = end;
      await vi.advanceTimersByTimeAsync(1_000);
      expect(await settled).toMatchObject({ summary: { total: 3, open: 2, broken: 1 } });
      expect(added(sig, before)).toEqual([]);
    },
  );

  test('a flow worker that dies while nothing stopped watch still ends it with the error (not a summary)', async () => {
    vi.useFakeTimers();
    worker.flows = [flow(1, 'backend1')];
    const done = watch(lab as unknown as Lab, { tcpFlows: 1, udpFlows: 0, json: true, tickMs: 1_000, write: () => {} });
    const settled = done.catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(1_000);
    worker.gone = 'code 1';
    await vi.advanceTimersByTimeAsync(1_000);
    expect(String(await settled)).toContain('flow worker exited (code 1)');
  });

  test('a second Ctrl-C later than that exits at once (130)', async () => {
    vi.useFakeTimers();
    const before = new Set<unknown>(process.rawListeners('SIGINT'));
    const exits: number[] = [];
    const exit = ((code: number) => {
      exits.push(code);
    }) as (code: number) => never;
    // A 10 s tick: watch still waits for it (the stop is seen at the next tick) when the second Ctrl-C comes.
    const done = watch(lab as unknown as Lab, {
      tcpFlows: 1,
      udpFlows: 0,
      json: true,
      tickMs: 10_000,
      write: () => {},
      exit,
    });
    await vi.advanceTimersByTimeAsync(10_000);
    send('SIGINT', before);
    send('SIGINT', before);
    expect(exits).toEqual([]);
    await vi.advanceTimersByTimeAsync(REPEAT_SIGNAL_WINDOW_MS);
    send('SIGINT', before);
    expect(exits).toEqual([130]);
    await vi.advanceTimersByTimeAsync(10_000);
    await done;
    expect(added('SIGINT', before)).toEqual([]);
  });
});
