/**
 * Host side of the flow generator: starts the worker in the client namespace, reads its reports, and asks every
 * node which flows it carries (the lab's observe table, runtime/nft.ts). Used by `lab watch` and the e2e tests.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { run, waitFor } from '@l4fleet/process';
import { LabError } from '../errors.js';
import type { Lab } from '../runtime/lab.js';
import { type ObservedFlow, observeTableOf, parseObservedSet } from '../runtime/nft.js';
import { scriptArgv } from '../runtime/scripts.js';
import { hostsOfKind, VIP_TCP, VIP_UDP } from '../topology/model.js';
import { type FlowSummary, flowKey, summarize } from './summary.js';
import type { WorkerCommand, WorkerReport } from './types.js';

export interface FlowRunOptions {
  readonly tcpFlows: number;
  readonly udpFlows: number;
  readonly intervalMs?: number;
  readonly reportMs?: number;
  readonly client?: string;
  /** Time for all flows to get their first answer; default 30 s. */
  readonly openTimeoutMs?: number;
  /**
   * Start even when some flows broke while opening (reset, refused); default false: start rejects, naming them, since
   * a step that takes `brokenIds` as its baseline would never count them.
   */
  readonly allowBroken?: boolean;
  /** No report from the worker for this long and the run has failed (`report`, `summary` throw); default 10 s. */
  readonly staleAfterMs?: number;
}

/** 40 reports at the default 250 ms: a worker this late is stuck, not slow. */
export const DEFAULT_FLOW_REPORT_STALE_MS = 10_000;

export class FlowRun {
  private latestReport: WorkerReport = { at: 0, markAt: 0, flows: [] };
  /**
   * performance.now() when the last report line was read (the worker's `at` is when it wrote it, on the wall clock):
   * a steady clock, so an NTP step forward does not make a reporting worker stale.
   */
  private lastReportAtMs = performance.now();
  private exited = false;
  /** Set by stop(): the worker's exit is then expected, and `report` is its final report. */
  private stopped = false;
  /** Why the worker is gone or cannot be told anything: spawn error, exit, stdin error (first of each kept). */
  private spawnError: string | undefined;
  private exitStatus: string | undefined;
  private stdinError: string | undefined;
  /**
   * Each node's observe set as last read (node/set -> flows, performance.now() when read): stands in for a read that
   * fails.
   */
  private readonly lastObserved = new Map<string, { flows: ObservedFlow[]; readAtMs: number }>();
  private stderr = '';

  private constructor(
    private readonly lab: Lab,
    private readonly child: ChildProcessWithoutNullStreams,
    private readonly staleAfterMs: number,
  ) {
    createInterface({ input: child.stdout }).on('line', (line) => {
      try {
        this.latestReport = JSON.parse(line) as WorkerReport;
        this.lastReportAtMs = performance.now();
      } catch {
        // a partial line at exit
      }
    });
    child.stderr.on('data', (d: Buffer) => (this.stderr = (this.stderr + d.toString()).slice(-4_000)));
    // Out of the host's process group, the worker no longer goes with a kill of that group: a host that exits without
    // stop() (process.exit on a second Ctrl-C, an uncaught error) kills it on the way out.
    const killAtExit = () => child.kill('SIGKILL');
    process.on('exit', killAtExit);
    child.on('exit', (code, signal) => {
      process.off('exit', killAtExit);
      this.exited = true;
      this.exitStatus = code !== null ? `code ${code}` : `signal ${signal}`;
    });
    // Without these listeners a worker that cannot be spawned (ENOENT) or a write to one that is dying (EPIPE) is an
    // uncaught exception that ends the host: `lab watch` or the whole test file.
    child.on('error', (err) => {
      if (child.pid !== undefined) return; // a failed kill of a running worker: its exit still comes
      process.off('exit', killAtExit);
      this.exited = true;
      this.spawnError ??= err.message;
    });
    child.stdin.on('error', (err) => {
      this.stdinError ??= err.message;
    });
  }

  static async start(lab: Lab, options: FlowRunOptions): Promise<FlowRun> {
    const client = options.client ?? hostsOfKind(lab.topology, 'client')[0]?.name ?? 'client';
    const argv = lab.execArgv(client, [
      ...scriptArgv('flows/worker-main'),
      '--tcp',
      `${VIP_TCP.address}:${VIP_TCP.port}`,
      '--udp',
      `${VIP_UDP.address}:${VIP_UDP.port}`,
      '--tcp-flows',
      String(options.tcpFlows),
      '--udp-flows',
      String(options.udpFlows),
      '--interval-ms',
      String(options.intervalMs ?? 50),
      '--report-ms',
      String(options.reportMs ?? 250),
    ]);
    const [cmd, ...args] = argv;
    // A process group (and session) of its own: a terminal's Ctrl-C or hangup, `timeout`'s or a CI cancel's SIGTERM go
    // to the lab command's whole group, and reached the worker too (SIGINT and SIGHUP ended it, SIGTERM stopped it)
    // while the command handled the signal its own way (add-node's undo, watch's summary): its flows died underneath
    // with "flow worker exited". Not unref'd: the command still owns it, and ends it by stop(), by the 'exit' hook
    // below, or (killed outright) by its stdin closing, which the worker takes as stop.
    const child = spawn(cmd ?? 'ip', args, { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    const flowRun = new FlowRun(lab, child, options.staleAfterMs ?? DEFAULT_FLOW_REPORT_STALE_MS);
    try {
      const report = await flowRun.waitAnswered(options.tcpFlows + options.udpFlows, options.openTimeoutMs ?? 30_000);
      const broken = report.flows.filter((f) => f.state === 'broken');
      if (broken.length > 0 && !options.allowBroken) {
        const named = broken.slice(0, 10).map((f) => {
          const port = f.localPort ? `:${f.localPort}` : '';
          return `flow ${f.id} ${f.protocol}${port} ${f.reason ?? 'unknown'}`;
        });
        const more = broken.length > 10 ? `, ... ${broken.length - 10} more` : '';
        throw new LabError(
          'COMMAND_FAILED',
          `${broken.length} of ${report.flows.length} flows broke while opening: ${named.join(', ')}${more}`,
        );
      }
    } catch (err) {
      // Nobody gets this run to stop: the worker and its flows would go on in the client namespace.
      if (!flowRun.exited) child.kill('SIGKILL');
      throw err;
    }
    return flowRun;
  }

  /** The worker's last report; throws once the worker is gone (exit, stdin error) or has not reported for too long. */
  get report(): WorkerReport {
    return this.current();
  }

  /** Why the worker can no longer be used, if it cannot: the run's figures would be frozen at its last report. */
  private failure(): string | undefined {
    if (this.spawnError !== undefined) return `cannot start flow worker: ${this.spawnError}`;
    const stderr = this.stderr.trim().split('\n').slice(-5).join(' | ');
    const tail = stderr ? `: ${stderr}` : '';
    if (this.exitStatus !== undefined) return `flow worker exited (${this.exitStatus})${tail}`;
    if (this.stdinError !== undefined) return `flow worker's stdin failed: ${this.stdinError}${tail}`;
    if (this.exited) return `flow worker exited${tail}`;
    return undefined;
  }

  private current(): WorkerReport {
    if (this.stopped) return this.latestReport;
    const failure = this.failure();
    if (failure !== undefined) throw new LabError('COMMAND_FAILED', failure);
    const silentMs = Math.round(performance.now() - this.lastReportAtMs);
    if (silentMs > this.staleAfterMs) {
      throw new LabError(
        'COMMAND_FAILED',
        `flow worker sent no report for ${silentMs} ms (bound ${this.staleAfterMs} ms); last report at ${new Date(this.latestReport.at).toISOString()}`,
      );
    }
    return this.latestReport;
  }

  private send(c: WorkerCommand): void {
    const failure = this.failure();
    if (failure !== undefined) throw new LabError('COMMAND_FAILED', failure);
    // A write that fails (EPIPE: the worker is dying) reaches the stdin 'error' listener; waits then give up.
    this.child.stdin.write(`${JSON.stringify(c)}\n`);
  }

  /** Waits until `count` flows exist and each has had an answer (or broke); gives up at once if the worker is gone. */
  private waitAnswered(count: number, timeoutMs: number): Promise<WorkerReport> {
    return waitFor(
      `${count} flows answered`,
      async () => {
        const r = this.latestReport;
        const ready = r.flows.filter((f) => f.replies > 0 || f.state === 'broken').length;
        return r.flows.length >= count && ready >= count ? r : undefined;
      },
      timeoutMs,
      100,
      () => this.failure(),
    );
  }

  /** Opens more flows and waits until they answer. */
  async open(tcp: number, udp: number, timeoutMs = 30_000): Promise<void> {
    const before = this.latestReport.flows.length;
    this.send({ cmd: 'open', tcp, udp });
    await this.waitAnswered(before + tcp + udp, timeoutMs);
  }

  /** Starts a new measurement window: pauses and "new flows" count from here. */
  async mark(): Promise<void> {
    // Done when a report carries another markAt than the last: only mark() changes it. Not "markAt >= now": markAt is
    // the worker's wall clock, and an NTP step back made that a 5 s timeout (a step between now and the worker's mark)
    // or let the last mark pass for this one (a step since the last mark).
    const before = this.latestReport.markAt;
    this.send({ cmd: 'mark' });
    await waitFor(
      'flow worker mark',
      async () => (this.latestReport.markAt !== before ? true : undefined),
      5_000,
      20,
      () => this.failure(),
    );
  }

  /** flowKey -> node that saw the flow last (largest remaining timeout in its observe set). */
  async carriers(): Promise<Map<string, string>> {
    const best = new Map<string, { node: string; expiresS: number }>();
    const nodes = hostsOfKind(this.lab.topology, 'node').filter((n) => !this.lab.killed.includes(n.name));
    await Promise.all(
      nodes.map(async (n) => {
        for (const set of ['flows4', 'flows6']) {
          // The router's table of the node (runtime/nft.ts): the flows the router sends it.
          const r = await run(['nft', '-j', 'list', 'set', 'netdev', observeTableOf(n.name), set], {
            namespace: this.lab.ns('router'),
            allowFailure: true,
            timeoutMs: 5_000,
          });
          // A read that fails (a 5 s timeout on a loaded machine, seen in CI) keeps the node's last view, aged,
          // rather than counting its flows under "?".
          const id = `${n.name}/${set}`;
          if (r.code === 0)
            this.lastObserved.set(id, { flows: parseObservedSet(r.stdout), readAtMs: performance.now() });
          const seen = this.lastObserved.get(id);
          if (!seen) continue;
          const ageS = (performance.now() - seen.readAtMs) / 1000;
          for (const f of seen.flows) {
            const key = flowKey(f.protocol, f.port);
            const prev = best.get(key);
            const expiresS = f.expiresS - ageS;
            if (!prev || expiresS > prev.expiresS) best.set(key, { node: n.name, expiresS });
          }
        }
      }),
    );
    return new Map([...best].map(([k, v]) => [k, v.node]));
  }

  async summary(): Promise<FlowSummary> {
    const carriers = await this.carriers();
    return summarize(this.current(), carriers);
  }

  /** Stops the worker (SIGKILL after 5 s); returns its last report, also when it had already failed. */
  async stop(): Promise<WorkerReport> {
    this.stopped = true;
    if (!this.exited) {
      // A worker whose stdin failed cannot be asked to stop: killed at once.
      if (this.child.stdin.writable && this.stdinError === undefined) {
        this.child.stdin.write(`${JSON.stringify({ cmd: 'stop' })}\n`);
        const deadline = performance.now() + 5_000;
        while (!this.exited && performance.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      }
      if (!this.exited) this.child.kill('SIGKILL');
    }
    return this.latestReport;
  }
}
