import { type ChildProcess, spawn } from 'node:child_process';
import { createServer, type Server, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { sleep, waitFor } from '@l4fleet/process';
import { afterEach, describe, expect, test } from 'vitest';
import { scriptArgv } from '../runtime/scripts.js';
import type { FlowSample, WorkerReport } from './types.js';
import { FlowWorker } from './worker.js';

/** An identity server on loopback that answers each line with `backend=b1` while `answering` is set. */
function identityServer(state: { answering: boolean }): Promise<{ server: Server; port: number }> {
  const sockets: Socket[] = [];
  const server = createServer((s) => {
    sockets.push(s);
    s.on('data', (d) => {
      if (!state.answering) return;
      for (const _ of d.toString().split('\n').slice(1)) s.write('backend=b1\n');
    });
    s.on('error', () => {});
  });
  server.on('close', () => {
    for (const s of sockets) s.destroy();
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      resolve({ server, port: typeof address === 'object' && address ? address.port : 0 });
    }),
  );
}

describe('lab flows - worker', () => {
  let worker: FlowWorker | undefined;
  let server: Server | undefined;
  afterEach(() => {
    worker?.stop();
    server?.close();
  });

  test('lab flows - the pause that broke a flow counts in its longest pause', async () => {
    const state = { answering: true };
    const started = await identityServer(state);
    server = started.server;
    // A steady clock the test moves: the gap is what the test says, not what the machine's timers make of it.
    let now = 1_000;
    const w = new FlowWorker({
      tcp: { protocol: 'tcp', address: '127.0.0.1', port: started.port },
      intervalMs: 10,
      brokenAfterMs: 15_000,
      now: () => 1_000,
      monoMs: () => now,
    });
    worker = w;
    w.open(1, 0);
    const flow = (): FlowSample | undefined => w.report().flows[0];
    await waitFor('two answers', async () => ((flow()?.replies ?? 0) >= 2 ? true : undefined), 5_000, 10);
    expect(flow()?.maxPauseMs).toBe(0);
    state.answering = false;
    // Answers written before the switch may still be on their way; the clock moves once they are in.
    await sleep(100);
    now = 21_000; // 20 s without an answer: past brokenAfterMs, the next tick breaks the flow
    await waitFor('flow broken', async () => (flow()?.state === 'broken' ? true : undefined), 5_000, 10);
    expect(flow()?.reason).toBe('timeout');
    expect(flow()?.maxPauseMs).toBe(20_000);
  });

  /** One TCP flow to an identity server on clocks the test sets: `clocks.wall` is Date's, `clocks.mono` the steady one. */
  async function flowOnClocks(clocks: { wall: number; mono: number }, state: { answering: boolean }) {
    const started = await identityServer(state);
    server = started.server;
    const w = new FlowWorker({
      tcp: { protocol: 'tcp', address: '127.0.0.1', port: started.port },
      intervalMs: 10,
      brokenAfterMs: 15_000,
      now: () => clocks.wall,
      monoMs: () => clocks.mono,
    });
    worker = w;
    w.open(1, 0);
    const flow = (): FlowSample | undefined => w.report().flows[0];
    await waitFor('two answers', async () => ((flow()?.replies ?? 0) >= 2 ? true : undefined), 5_000, 10);
    return { w, flow };
  }

  test('lab flows - a flow opened after the last mark is new (sinceMark), counted in marks, not wall-clock times', async () => {
    const started = await identityServer({ answering: true });
    server = started.server;
    let wall = 10_000;
    worker = new FlowWorker({
      tcp: { protocol: 'tcp', address: '127.0.0.1', port: started.port },
      now: () => wall,
    });
    worker.open(1, 0);
    worker.mark();
    wall -= 3_600_000; // NTP steps the clock back after the mark: openedAt of the next flow is before markAt
    worker.open(1, 0);
    const flows = worker.report().flows;
    expect(flows.map((f) => f.sinceMark)).toEqual([false, true]);
    worker.mark();
    expect(worker.report().flows.map((f) => f.sinceMark)).toEqual([false, false]);
  });

  test('lab flows - a wall clock stepped forward an hour is no pause: the flow keeps answering and stays unbroken', async () => {
    const clocks = { wall: 1_000, mono: 1_000 };
    const { flow } = await flowOnClocks(clocks, { answering: true });
    const before = flow()?.replies ?? 0;
    clocks.wall += 3_600_000; // NTP steps Date; the steady clock does not move
    await waitFor('two answers more', async () => ((flow()?.replies ?? 0) >= before + 2 ? true : undefined), 5_000, 10);
    expect(flow()?.state).toBe('open');
    expect(flow()?.maxPauseMs).toBe(0);
  });

  test('lab flows - a wall clock stepped back an hour hides no pause: 20 s without an answer still breaks the flow', async () => {
    const clocks = { wall: 1_000, mono: 1_000 };
    const state = { answering: true };
    const { w, flow } = await flowOnClocks(clocks, state);
    state.answering = false;
    await sleep(100); // answers already on their way land before the clocks move
    clocks.wall -= 3_600_000;
    clocks.mono += 20_000;
    await waitFor('flow broken', async () => (flow()?.state === 'broken' ? true : undefined), 5_000, 10);
    expect(flow()?.reason).toBe('timeout');
    expect(flow()?.maxPauseMs).toBe(20_000);
    // Times written out stay on the wall clock.
    expect(w.report().at).toBe(1_000 - 3_600_000);
    expect(flow()?.openedAt).toBe(1_000);
  });

  // The steady clock reads fractions: a pause of 86.797 ms went out as is, and the dashboard refused every lab flows
  // message ("longestPauseMs: 86.797... is not a count"), so `lab watch` was never on the page.
  test('lab flows - pauses are reported in whole ms on a steady clock that reads fractions', async () => {
    const clocks = { wall: 1_000, mono: 1_000.25 };
    const state = { answering: true };
    const { flow } = await flowOnClocks(clocks, state);
    state.answering = false;
    await sleep(100);
    clocks.mono += 86.797;
    const pause = flow()?.maxPauseMs ?? -1;
    expect(Number.isInteger(pause)).toBe(true);
    expect(pause).toBe(87);
  });
});

describe('lab flows - worker-main', () => {
  let child: ChildProcess | undefined;
  afterEach(() => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    child = undefined;
  });

  // In a process group of its own (run.ts), the worker no longer goes with a kill of its lab command's group: the end
  // of its stdin (the command died, even by SIGKILL) is what tells it to stop.
  test('lab flows - the worker stops when its stdin ends: its final report, exit 0', async () => {
    const [cmd = process.execPath, ...args] = scriptArgv('flows/worker-main');
    const c = spawn(cmd, [...args, '--report-ms', '50'], { stdio: ['pipe', 'pipe', 'pipe'] });
    child = c;
    const reports: WorkerReport[] = [];
    createInterface({ input: c.stdout }).on('line', (l) => reports.push(JSON.parse(l) as WorkerReport));
    await waitFor('a first report', async () => (reports.length > 0 ? true : undefined), 20_000, 20);
    c.stdin.end();
    const exited = (): true | undefined => (c.exitCode !== null || c.signalCode !== null ? true : undefined);
    await waitFor('the worker exiting after its stdin ended', async () => exited(), 10_000, 20);
    expect({ code: c.exitCode, signal: c.signalCode }).toEqual({ code: 0, signal: null });
    expect(reports.at(-1)?.flows).toEqual([]);
  });

  // The final report goes to a lab command that may no longer read: with its stdout pipe full the write never ends, and
  // the worker must exit without it (STOP_EXIT_MS) instead of running on with its flows.
  test('lab flows - the worker told to stop exits even when its stdout is full and never read', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const address = closed.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    await new Promise((r) => closed.close(r));
    const [cmd = process.execPath, ...args] = scriptArgv('flows/worker-main');
    // 200 refused flows: reports of tens of KB every ms fill the pipe and the unread stream's buffer at once.
    const flowArgs = ['--tcp', `127.0.0.1:${port}`, '--tcp-flows', '200', '--report-ms', '1'];
    const c = spawn(cmd, [...args, ...flowArgs], { stdio: ['pipe', 'pipe', 'pipe'] });
    child = c;
    c.stdout.pause();
    const full = () => (c.stdout.readableLength >= c.stdout.readableHighWaterMark ? true : undefined);
    await waitFor("the worker's unread stdout buffered to its high-water mark", async () => full(), 20_000, 20);
    // The kernel pipe behind it fills from the next few reports.
    await sleep(500);
    c.stdin.write('{"cmd":"stop"}\n');
    const exited = (): true | undefined => (c.exitCode !== null || c.signalCode !== null ? true : undefined);
    await waitFor('the worker exiting after stop with its stdout full', async () => exited(), 5_000, 20);
    expect({ code: c.exitCode, signal: c.signalCode }).toEqual({ code: 0, signal: null });
  });
});
