/**
 * What the lab's scenario tests share (test/lab-e2e.int.test.ts, test/lab-faults.int.test.ts and others): the
 * `l4fleet` CLI against the lab's etcd, the agents' metrics, the flows broken so far, and one step's disruption table.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  AGENT_METRICS_PORT,
  attachmentOf,
  cliBin,
  disruptionTable,
  type FlowRun,
  type FlowSample,
  type FlowSummary,
  hostsOfKind,
  type Lab,
  type RunResult,
  run,
} from '@l4fleet/lab';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A node's agent `/metrics` text (the lab's agents listen on their control address, netns or Docker). */
export async function agentMetrics(lab: Lab, node: string): Promise<string> {
  const address = attachmentOf(lab.topology, 'control', node).ipv4;
  const r = await fetch(`http://${address}:${AGENT_METRICS_PORT}/metrics`, { signal: AbortSignal.timeout(5_000) });
  return r.text();
}

/**
 * How many times each of `nodes` (default: every node) has gone fail-static (l4fleet_fail_static_entered_total): a
 * blip between scrapes counts.
 */
export async function failStaticEntries(
  lab: Lab,
  nodes: readonly string[] = hostsOfKind(lab.topology, 'node').map((h) => h.name),
): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const name of nodes) {
    const m = /^l4fleet_fail_static_entered_total(?:\{[^}]*\})? (\d+)$/m.exec(await agentMetrics(lab, name));
    out[name] = Number(m?.[1] ?? Number.NaN);
  }
  return out;
}

const CLI_TIMEOUT_MS = 30_000;

/** `l4fleet --etcd <every member> ...`; a non-zero exit throws unless `allowFailure`. */
export function l4fleetRun(
  lab: Lab,
  args: readonly string[],
  opts: { allowFailure?: boolean } = {},
): Promise<RunResult> {
  const etcd = lab.topology.control.etcdEndpoints.join(',');
  return run([process.execPath, cliBin(), '--etcd', etcd, ...args], {
    timeoutMs: CLI_TIMEOUT_MS,
    allowFailure: opts.allowFailure ?? false,
  });
}

/** stdout of `l4fleet --etcd <every member> ...`; throws on a non-zero exit. */
export async function l4fleet(lab: Lab, ...args: string[]): Promise<string> {
  return (await l4fleetRun(lab, args)).stdout;
}

export function brokenIds(flows: FlowRun): Set<number> {
  return new Set(flows.report.flows.filter((f) => f.state === 'broken').map((f) => f.id));
}

/** Settles, prints the step's disruption table, returns the summary and the flows broken during the step. */
export async function step(
  flows: FlowRun,
  name: string,
  before: Set<number>,
  settleMs: number,
): Promise<{ s: FlowSummary; broken: number[] }> {
  await sleep(settleMs);
  const s = await flows.summary();
  console.log(disruptionTable(name, s));
  const broken = [...brokenIds(flows)].filter((i) => !before.has(i));
  return { s, broken };
}

/** An interface's kernel counters (`ip -s -j link`), read inside a lab host. */
export interface LinkCounters {
  readonly rxPackets: number;
  readonly txPackets: number;
  readonly rxBytes: number;
  readonly txBytes: number;
}

export async function linkCounters(lab: Lab, host: string, iface = 'eth0'): Promise<LinkCounters> {
  const r = await run(['ip', '-s', '-j', 'link', 'show', 'dev', iface], { namespace: lab.ns(host), timeoutMs: 5_000 });
  const [link] = JSON.parse(r.stdout) as { stats64?: { rx: Record<string, number>; tx: Record<string, number> } }[];
  const s = link?.stats64;
  if (!s) throw new Error(`${host} ${iface}: no stats64 in ${r.stdout.slice(0, 200)}`);
  return {
    rxPackets: s.rx.packets ?? 0,
    txPackets: s.tx.packets ?? 0,
    rxBytes: s.rx.bytes ?? 0,
    txBytes: s.tx.bytes ?? 0,
  };
}

/** Counters of `hosts` summed, for a window: call, wait, call again and subtract. */
export async function sumCounters(lab: Lab, hosts: readonly string[]): Promise<LinkCounters> {
  const all = await Promise.all(hosts.map((h) => linkCounters(lab, h)));
  return all.reduce(
    (a, c) => ({
      rxPackets: a.rxPackets + c.rxPackets,
      txPackets: a.txPackets + c.txPackets,
      rxBytes: a.rxBytes + c.rxBytes,
      txBytes: a.txBytes + c.txBytes,
    }),
    { rxPackets: 0, txPackets: 0, rxBytes: 0, txBytes: 0 },
  );
}

export function minus(a: LinkCounters, b: LinkCounters): LinkCounters {
  return {
    rxPackets: a.rxPackets - b.rxPackets,
    txPackets: a.txPackets - b.txPackets,
    rxBytes: a.rxBytes - b.rxBytes,
    txBytes: a.txBytes - b.txBytes,
  };
}

/**
 * The agents' own record of a step, for a failed bound to say where the time went: each node's `agent.log` (pino JSON
 * lines, `time` in ms) from `sinceMs` on, the events named in `events`, one line each as "+ms node event detail".
 * A line that is not JSON (a daemon's stderr) is skipped; a node without a log says so.
 */
export function agentTimeline(
  lab: Lab,
  nodes: readonly string[],
  sinceMs: number,
  events: readonly string[],
  detail: (e: Record<string, unknown>) => boolean = () => true,
): string {
  const lines: { t: number; text: string }[] = [];
  for (const node of nodes) {
    const file = join(lab.hostDir(node), 'agent.log');
    if (!existsSync(file)) {
      lines.push({ t: 0, text: `${node}: no ${file}` });
      continue;
    }
    for (const raw of readFileSync(file, 'utf8').split('\n')) {
      if (!raw.startsWith('{')) continue;
      let e: Record<string, unknown>;
      try {
        e = JSON.parse(raw) as Record<string, unknown>;
      } catch {
        continue;
      }
      const t = typeof e.time === 'number' ? e.time : 0;
      if (t < sinceMs || !events.includes(String(e.event)) || !detail(e)) continue;
      const { time: _t, level: _l, pid: _p, hostname: _h, event, ...rest } = e;
      lines.push({ t, text: `+${t - sinceMs} ms ${node} ${String(event)} ${JSON.stringify(rest)}` });
    }
  }
  return lines
    .sort((a, b) => a.t - b.t)
    .map((l) => l.text)
    .join('\n');
}

/**
 * Whether a batch of new flows reached `backend` while it was failing: an answer from it, or a connection refused
 * or reset before any answer. Only a backend answers a SYN for the VIP (straight to the client) and a live one
 * answers with its name, so a reset without one is the failed backend's dead port (ECONNREFUSED) or its dying
 * socket (ECONNRESET: a CI run, right at the kill). Any other failure of a new flow (a timeout) says nothing about
 * the backend: listed apart, as "protocol:port reason" (it used to count as a hit, so one slow flow on a loaded
 * machine moved the measurement).
 */
export function reachedBackend(
  batch: readonly FlowSample[],
  backend: string,
): { reached: boolean; hits: FlowSample[]; otherFailures: string[] } {
  const refused = (f: FlowSample) =>
    f.backend === undefined && (f.reason === 'ECONNREFUSED' || f.reason === 'reset' || f.reason === 'closed');
  const hits = batch.filter((f) => f.backend === backend || refused(f));
  return {
    reached: hits.length > 0,
    hits,
    otherFailures: batch
      .filter((f) => f.state === 'broken' && f.backend === undefined && !refused(f))
      .map((f) => `${f.protocol}:${f.localPort} ${f.reason}`),
  };
}

/**
 * After `backend` failed at `failedAt`: batches of 4 new TCP flows every 250 ms (at most 80, and no longer than
 * 2 s past both `boundMs` and the last hit) until none reaches it. `lastHitMs` is the start of the last batch that
 * reached it; `hits` names each flow that did (port, how, when it opened), so a late hit says what it was.
 */
export async function probeFailedBackend(
  flows: FlowRun,
  backend: string,
  failedAt: number,
  boundMs: number,
): Promise<{ lastHitMs: number; hits: string[]; otherFailures: string[] }> {
  let lastHitMs = 0;
  const hits: string[] = [];
  const otherFailures: string[] = [];
  for (let i = 0; i < 80; i++) {
    const elapsed = Date.now() - failedAt;
    if (elapsed > Math.max(boundMs, lastHitMs) + 2_000) break;
    const from = flows.report.flows.length;
    await flows.open(4, 0, 10_000);
    const batch = flows.report.flows.slice(from);
    const seen = reachedBackend(batch, backend);
    if (seen.reached) lastHitMs = elapsed;
    for (const f of seen.hits)
      hits.push(
        `${f.protocol}:${f.localPort} ${f.backend ?? f.reason} (batch +${elapsed} ms, opened +${f.openedAt - failedAt} ms)`,
      );
    otherFailures.push(...seen.otherFailures.map((f) => `${f} at ${elapsed} ms`));
    await sleep(250);
  }
  return { lastHitMs, hits, otherFailures };
}
