import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { waitFor } from '@l4fleet/process';
import { afterEach, describe, expect, test, vi } from 'vitest';
import type { Lab } from '../runtime/lab.js';
import { buildTopology } from '../topology/model.js';
import type { FlowSample, WorkerReport } from './types.js';

// The worker is a process the test writes; the test keeps hold of it to see what start() leaves running.
const spawned = vi.hoisted(() => ({ children: [] as ChildProcess[] }));
vi.mock('node:child_process', async (importOriginal) => {
  const original = await importOriginal<typeof import('node:child_process')>();
  return {
    ...original,
    spawn: (...args: Parameters<typeof original.spawn>) => {
      const child = original.spawn(...args);
      spawned.children.push(child);
      return child;
    },
  };
});
// No node's observe set can be read here: every flow's carrier is `?`.
vi.mock('@l4fleet/process', async (importOriginal) => ({
  ...(await importOriginal<typeof import('@l4fleet/process')>()),
  run: async () => ({ code: 1, stdout: '', stderr: 'no lab' }),
}));

const { FlowRun } = await import('./run.js');

function sample(id: number, over: Partial<FlowSample> = {}): FlowSample {
  return {
    id,
    protocol: 'tcp',
    localPort: 40000 + id,
    localAddress: '198.18.1.2',
    target: '198.51.100.10:80',
    backend: 'backend1',
    state: 'open',
    replies: 3,
    maxPauseMs: 50,
    openedAt: Date.now(),
    backends: ['backend1'],
    ...over,
  };
}

function reportLine(flows: FlowSample[]): string {
  const r: WorkerReport = { at: Date.now(), markAt: 0, flows };
  return JSON.stringify(r);
}

/** A lab whose client runs `argv` as the flow worker. */
function fakeLab(argv: string[]): Lab {
  return { topology: buildTopology(), killed: [], ns: (h: string) => h, execArgv: () => argv } as unknown as Lab;
}

/** A node worker running `js` (stdout: reports, one JSON line each). */
const nodeWorker = (js: string) => fakeLab([process.execPath, '-e', js]);

async function exitOf(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  await Promise.race([once(child, 'exit'), new Promise((r) => setTimeout(r, 4_000))]);
}

describe('lab flows - run', () => {
  afterEach(() => {
    for (const c of spawned.children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    spawned.children.length = 0;
  });

  test('lab flows - a worker whose flows never answer is killed when start gives up', async () => {
    const lab = nodeWorker('setInterval(() => {}, 1000)');
    await expect(FlowRun.start(lab, { tcpFlows: 1, udpFlows: 0, openTimeoutMs: 300 })).rejects.toThrow(
      '1 flows answered',
    );
    const [child] = spawned.children;
    expect(child?.killed).toBe(true);
  });

  test('lab flows - a worker that died is no healthy run: summary and report name its exit code and stderr', async () => {
    const line = reportLine([sample(1), sample(2)]);
    const lab = nodeWorker(
      `console.log(${JSON.stringify(line)}); setTimeout(() => { console.error('worker blew up'); process.exit(1); }, 300)`,
    );
    const flows = await FlowRun.start(lab, { tcpFlows: 2, udpFlows: 0, openTimeoutMs: 4_000 });
    await exitOf(spawned.children[0]);
    await expect(flows.summary()).rejects.toThrow(/flow worker exited \(code 1\).*worker blew up/);
    expect(() => flows.report).toThrow(/flow worker exited \(code 1\)/);
    await flows.stop();
  });

  test('lab flows - a wall clock stepped forward does not make a reporting worker stale', async () => {
    const line = reportLine([sample(1)]);
    const lab = nodeWorker(`console.log(${JSON.stringify(line)}); process.stdin.on('data', () => process.exit(0))`);
    const flows = await FlowRun.start(lab, { tcpFlows: 1, udpFlows: 0, staleAfterMs: 10_000 });
    try {
      // NTP steps the wall clock an hour forward (Date only); the report read a moment ago is still fresh.
      vi.useFakeTimers({ toFake: ['Date'] });
      vi.setSystemTime(Date.now() + 3_600_000);
      expect(flows.report.flows).toHaveLength(1);
    } finally {
      vi.useRealTimers();
      await flows.stop();
    }
  });

  test('lab flows - mark waits for the mark, not for a wall-clock time: a clock stepped back between them is no timeout', async () => {
    const flow = sample(1);
    // A worker whose clock was stepped back an hour when it took the mark (one host clock; the worker stands in).
    const js = `
      const report = (markAt) => console.log(JSON.stringify({ at: Date.now(), markAt, flows: [${JSON.stringify(flow)}] }));
      report(0);
      require('node:readline').createInterface({ input: process.stdin }).on('line', (l) => {
        const c = JSON.parse(l);
        if (c.cmd === 'mark') report(Date.now() - 3600000);
        if (c.cmd === 'stop') process.exit(0);
      });`;
    const flows = await FlowRun.start(nodeWorker(js), { tcpFlows: 1, udpFlows: 0 });
    try {
      await flows.mark();
      expect(flows.report.markAt).toBeGreaterThan(0);
    } finally {
      await flows.stop();
    }
  });

  test('lab flows - a worker that stops reporting is no healthy run either', async () => {
    const line = reportLine([sample(1)]);
    // Silent after one report, alive until told to stop.
    const lab = nodeWorker(`console.log(${JSON.stringify(line)}); process.stdin.on('data', () => process.exit(0))`);
    const flows = await FlowRun.start(lab, { tcpFlows: 1, udpFlows: 0, staleAfterMs: 200 });
    await new Promise((r) => setTimeout(r, 400));
    await expect(flows.summary()).rejects.toThrow(/flow worker sent no report for \d+ ms \(bound 200 ms\)/);
    expect(() => flows.report).toThrow(/no report/);
    await flows.stop();
  });

  test('lab flows - start refuses flows that broke while opening, naming them; allowBroken takes them', async () => {
    const line = reportLine([sample(1), sample(2, { state: 'broken', reason: 'ECONNREFUSED', replies: 0 })]);
    const js = `console.log(${JSON.stringify(line)}); process.stdin.on('data', () => process.exit(0))`;
    await expect(FlowRun.start(nodeWorker(js), { tcpFlows: 2, udpFlows: 0 })).rejects.toThrow(
      /1 of 2 flows broke while opening: flow 2 tcp:40002 ECONNREFUSED/,
    );
    expect(spawned.children[0]?.killed).toBe(true);
    const flows = await FlowRun.start(nodeWorker(js), { tcpFlows: 2, udpFlows: 0, allowBroken: true });
    expect((await flows.summary()).broken).toBe(1);
    await flows.stop();
  });

  test('lab flows - a worker that closed its stdin: a command fails with a LabError, the host does not crash', async () => {
    const line = reportLine([sample(1)]);
    // The shell closes its stdin, reports, and lives on: a write to it gets EPIPE.
    const lab = fakeLab(['sh', '-c', `exec 0<&-; echo '${line}'; sleep 5`]);
    const flows = await FlowRun.start(lab, { tcpFlows: 1, udpFlows: 0 });
    await expect(flows.mark()).rejects.toThrow(/flow worker's stdin failed: .*EPIPE/);
    await expect(flows.open(1, 0)).rejects.toMatchObject({ name: 'LabError', code: 'COMMAND_FAILED' });
    expect(() => flows.report).toThrow(/EPIPE/);
    await flows.stop();
  });

  test('lab flows - a worker that cannot be spawned fails start at once, naming why', async () => {
    const lab = fakeLab(['/nonexistent/l4fleet-flow-worker']);
    await expect(FlowRun.start(lab, { tcpFlows: 1, udpFlows: 0, openTimeoutMs: 60_000 })).rejects.toThrow(
      /cannot start flow worker: spawn \/nonexistent\/l4fleet-flow-worker ENOENT/,
    );
  });
});

/**
 * A lab command in a process group of its own (as a shell runs one): it starts the real flow worker (worker-main, no
 * flows) through FlowRun, says `ready` once the worker reports, and keeps it until told on stdin: `mark` (a round trip
 * to the worker), `stop` (FlowRun.stop), `exit` (process.exit(130) with the run not stopped, as a second Ctrl-C to
 * watch does), `exit-held` (the same, a child of its own holding the worker's pipes open). The signals it gets are only
 * printed. The fake lab's "namespace exec" writes the worker's pid to `argv[1]` and execs it, as `ip netns exec` does.
 */
const PARENT_JS = `
  const { FlowRun } = await import(${JSON.stringify(pathToFileURL(join(import.meta.dirname, 'run.ts')).href)});
  const pidFile = process.argv[1];
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => console.log(sig));
  const lab = { killed: [], execArgv: (_host, argv) => ['sh', '-c', 'echo $$ > "$0"; exec "$@"', pidFile, ...argv] };
  const flows = await FlowRun.start(lab, { client: 'client', tcpFlows: 0, udpFlows: 0, reportMs: 50 });
  // No flows to answer: start returns at once. Ready once the worker reports (report throws after 10 s without one).
  while (flows.report.at === 0) await new Promise((r) => setTimeout(r, 20));
  console.log('ready');
  const { createInterface } = await import('node:readline');
  createInterface({ input: process.stdin }).on('line', async (line) => {
    try {
      if (line === 'mark') await flows.mark();
      if (line === 'stop') await flows.stop();
      if (line === 'exit') process.exit(130);
      if (line === 'exit-held') {
        // A process of the command's group keeps the worker's pipes open: its stdin does not end when the command does.
        const { spawn } = await import('node:child_process');
        const { stdin, stdout, stderr } = flows.child;
        spawn('sleep', ['30'], { stdio: ['ignore', 'ignore', 'ignore', stdin, stdout, stderr] });
        process.exit(130);
      }
      console.log(line + ' ok');
    } catch (err) {
      console.log(line + ' failed: ' + err.message);
    }
  });`;

/** Whether `pid` is a live process (a zombie, exited but not yet reaped by its new parent, is not). */
function alive(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z';
  } catch {
    return false;
  }
}

/** The process group of `pid` (field 5 of /proc/PID/stat). */
function processGroup(pid: number): number {
  return Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ')[2]);
}

describe('lab flows - run: the worker and the lab command that started it', () => {
  let dir: string | undefined;
  let parent: ChildProcess | undefined;
  let workerPid: number | undefined;
  afterEach(() => {
    for (const kill of [
      () => parent?.pid && process.kill(-parent.pid, 'SIGKILL'),
      () => workerPid && process.kill(workerPid, 'SIGKILL'),
    ]) {
      try {
        kill();
      } catch {
        // already gone
      }
    }
    parent = undefined;
    workerPid = undefined;
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  /** Starts the lab command (own process group) and waits until its flow run has started; `ask` sends one line. */
  async function startParent() {
    dir = mkdtempSync(join(tmpdir(), 'l4fleet-flow-run-'));
    const pidFile = join(dir, 'worker.pid');
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', PARENT_JS, pidFile], {
      detached: true,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    parent = child;
    const lines: string[] = [];
    let stderr = '';
    createInterface({ input: child.stdout }).on('line', (l) => lines.push(l));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const seen = (line: string, timeoutMs = 10_000) =>
      waitFor(
        `lab command printing "${line}"`,
        async () => (lines.includes(line) ? true : undefined),
        timeoutMs,
        20,
        () => (child.exitCode !== null || child.signalCode !== null ? `it exited: ${stderr.trim()}` : undefined),
      );
    /** Sends `cmd`; the line it answers ("mark ok", "mark failed: ..."). */
    const ask = async (cmd: string): Promise<string> => {
      const at = lines.length;
      child.stdin.write(`${cmd}\n`);
      return waitFor(
        `answer to "${cmd}"`,
        async () => lines.slice(at).find((l) => l.startsWith(`${cmd} `)),
        10_000,
        20,
        () => (child.exitCode !== null || child.signalCode !== null ? `it exited: ${stderr.trim()}` : undefined),
      );
    };
    await seen('ready', 30_000);
    workerPid = Number(readFileSync(pidFile, 'utf8'));
    expect(alive(workerPid)).toBe(true);
    return { child, pid: workerPid, seen, ask };
  }

  const gone = (pid: number, what: string) => waitFor(what, async () => (alive(pid) ? undefined : true), 10_000, 20);

  // A terminal's Ctrl-C or hangup and `timeout`'s SIGTERM go to the whole process group: the flow worker was in the
  // lab command's, so SIGINT and SIGHUP ended it and SIGTERM stopped it while the command handled the signal its own
  // way (add-node's undo, watch's summary), its flows gone underneath ("flow worker exited").
  test("lab flows - a signal to the lab command's process group does not reach the worker; stop() still ends it", async () => {
    const { child, pid, seen, ask } = await startParent();
    if (child.pid === undefined) throw new Error('no pid');
    expect(processGroup(pid)).not.toBe(processGroup(child.pid));
    for (const sig of ['SIGINT', 'SIGHUP', 'SIGTERM'] as const) {
      process.kill(-child.pid, sig);
      await seen(sig);
      expect(await ask('mark'), `after ${sig} to the group`).toBe('mark ok');
    }
    expect(alive(pid)).toBe(true);
    expect(await ask('stop')).toBe('stop ok');
    await gone(pid, 'worker gone after stop()');
  });

  // Out of the command's process group, a worker no longer goes with the group's kill: its stdin closing must end it.
  test.each([
    ['killed (SIGKILL)', (c: ChildProcess) => c.kill('SIGKILL')],
    ['exiting without stopping the run', (c: ChildProcess) => c.stdin?.write('exit\n')],
  ])('lab flows - a lab command %s leaves no worker behind', async (_how, end) => {
    const { child, pid } = await startParent();
    end(child);
    await gone(pid, 'worker gone after its lab command');
  });

  // Its stdin held open by another process (a child of the command that outlives it), the worker would not learn the
  // command is gone: the command's 'exit' hook kills it.
  test('lab flows - a lab command exiting without stopping the run leaves no worker behind, its stdin held open', async () => {
    const { child, pid } = await startParent();
    child.stdin?.write('exit-held\n');
    await gone(pid, 'worker gone after its lab command exited');
  });
});
