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
}

export class FlowRun {
  private latestReport: WorkerReport = { at: 0, markAt: 0, flows: [] };
  private exited = false;
  /** Each node's observe set as last read (node/set -> flows, when read): stands in for a read that fails. */
  private readonly lastObserved = new Map<string, { flows: ObservedFlow[]; readAtMs: number }>();
  private stderr = '';

  private constructor(
    private readonly lab: Lab,
    private readonly child: ChildProcessWithoutNullStreams,
  ) {
    createInterface({ input: child.stdout }).on('line', (line) => {
      try {
        this.latestReport = JSON.parse(line) as WorkerReport;
      } catch {
        // a partial line at exit
      }
    });
    child.stderr.on('data', (d: Buffer) => (this.stderr = (this.stderr + d.toString()).slice(-4_000)));
    child.on('exit', () => (this.exited = true));
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
    const child = spawn(cmd ?? 'ip', args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const flowRun = new FlowRun(lab, child);
    try {
      await flowRun.waitAnswered(options.tcpFlows + options.udpFlows, options.openTimeoutMs ?? 30_000);
    } catch (err) {
      // Nobody gets this run to stop: the worker and its flows would go on in the client namespace.
      if (!flowRun.exited) child.kill('SIGKILL');
      throw err;
    }
    return flowRun;
  }

  get report(): WorkerReport {
    return this.latestReport;
  }

  private send(c: WorkerCommand): void {
    if (this.exited) throw new LabError('COMMAND_FAILED', `flow worker exited: ${this.stderr.trim()}`);
    this.child.stdin.write(`${JSON.stringify(c)}\n`);
  }

  /** Waits until `count` flows exist and each has had an answer (or broke). */
  private waitAnswered(count: number, timeoutMs: number): Promise<WorkerReport> {
    return waitFor(
      `${count} flows answered`,
      async () => {
        if (this.exited) throw new LabError('COMMAND_FAILED', `flow worker exited: ${this.stderr.trim()}`);
        const r = this.latestReport;
        const ready = r.flows.filter((f) => f.replies > 0 || f.state === 'broken').length;
        return r.flows.length >= count && ready >= count ? r : undefined;
      },
      timeoutMs,
      100,
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
    const t = Date.now();
    this.send({ cmd: 'mark' });
    await waitFor('flow worker mark', async () => (this.latestReport.markAt >= t ? true : undefined), 5_000, 20);
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
          if (r.code === 0) this.lastObserved.set(id, { flows: parseObservedSet(r.stdout), readAtMs: Date.now() });
          const seen = this.lastObserved.get(id);
          if (!seen) continue;
          const ageS = (Date.now() - seen.readAtMs) / 1000;
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
    return summarize(this.latestReport, carriers);
  }

  async stop(): Promise<WorkerReport> {
    if (!this.exited) {
      this.child.stdin.write(`${JSON.stringify({ cmd: 'stop' })}\n`);
      const deadline = Date.now() + 5_000;
      while (!this.exited && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      if (!this.exited) this.child.kill('SIGKILL');
    }
    return this.latestReport;
  }
}
