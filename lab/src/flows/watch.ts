/**
 * `lab watch`: K long-lived TCP flows and U UDP flows from the client, shown live: flows per node and per backend,
 * broken flows, the longest pause, and a timeline (lab events from `lab` commands plus changes of the router's ECMP
 * next hops, which is how a drain or a dead node shows up). `--json`: one JSON object per tick instead.
 */
import { onStopSignals, STOP_SIGNALS, signalExitCode } from '../interrupt.js';
import type { Lab } from '../runtime/lab.js';
import { type LabEvent, readEvents } from '../runtime/state.js';
import { routerNextHops } from '../runtime/status.js';
import { attachmentOf, hostsOfKind, VIP_TCP } from '../topology/model.js';
import { FlowRun } from './run.js';
import type { FlowSummary } from './summary.js';

export interface WatchOptions {
  readonly tcpFlows: number;
  readonly udpFlows: number;
  readonly json: boolean;
  /** Refresh period; default 1 s. */
  readonly tickMs?: number;
  /** Stop after this long once the flows are open (default: until SIGINT, SIGTERM or SIGHUP). */
  readonly durationMs?: number;
  readonly write: (text: string) => void;
  /** Called with every tick (e.g. to publish it for the dashboard, publish.ts). */
  readonly onTick?: (tick: WatchTick) => void;
  /** Ends the process at once (default process.exit): a second SIGINT / SIGTERM / SIGHUP. */
  readonly exit?: (code: number) => never;
}

export interface WatchTick {
  readonly at: string;
  readonly summary: FlowSummary;
  readonly nextHops: readonly string[];
  readonly events: readonly LabEvent[];
  /** Every node and backend of the lab at this tick (also those added after `watch` started). */
  readonly nodes: readonly string[];
  readonly backends: readonly string[];
  /** Killed nodes and failed backends. */
  readonly down: readonly string[];
}

/** What the flows looked like when `watch` stopped. */
export interface WatchResult {
  readonly summary: FlowSummary;
}

export async function watch(lab: Lab, options: WatchOptions): Promise<WatchResult> {
  // Flows that broke while opening are shown (and fail --check) rather than ending the view before it starts.
  const flows = await FlowRun.start(lab, { tcpFlows: options.tcpFlows, udpFlows: options.udpFlows, allowBroken: true });
  // The duration counts from when the flows answer: opening them can take longer than a short --duration. On
  // performance.now(), a steady clock: on the wall clock an NTP step back made the run longer by the step's length.
  const startedAt = performance.now();
  const router = lab.topology.hosts.find((h) => h.name === 'router')?.namespace ?? '';
  // Other `lab` commands (a new process each) add nodes and backends while this runs: names come from the state as
  // it is at each tick, so a node added later is named, and asked which flows it carries, like the first ones.
  let nodeByAddress = nodesByAddress(lab);
  const seen = readEvents(lab.id).length;
  const timeline: LabEvent[] = [
    {
      at: new Date().toISOString(),
      event: 'watchStarted',
      detail: `${options.tcpFlows} tcp, ${options.udpFlows} udp flows`,
    },
  ];
  let hops = await routerNextHops(router, `${VIP_TCP.address}/32`);
  let consumed = seen;
  let brokenBefore = 0;
  let stopping = false;
  // The first signal stops the view (the summary follows); the same one again at once is that signal delivered twice
  // (to the process group, and forwarded by `l4fleet lab`): with the handler gone it ended watch without the summary.
  // A later one exits at once. SIGHUP (an ssh session that dropped, a terminal closed) too: unhandled, its default
  // ended watch without the summary or the --check verdict.
  const removeHandlers = onStopSignals(STOP_SIGNALS, {
    first: () => {
      stopping = true;
    },
    again: (sig) => (options.exit ?? process.exit)(signalExitCode(sig)),
  });
  /**
   * The flows now; undefined if a signal stopped watch and the worker is gone since (the same signal ended it), so the
   * summary is the flows as last seen. A worker that failed while nothing stopped watch ends it with that error.
   */
  const summaryUnlessStopped = async (): Promise<FlowSummary | undefined> => {
    try {
      return await flows.summary();
    } catch (err) {
      if (stopping) return undefined;
      throw err;
    }
  };
  try {
    // The flows as last seen: what a stop by a signal ends with when the worker is gone by then.
    let seenSummary = await flows.summary();
    while (!stopping && (options.durationMs === undefined || performance.now() - startedAt < options.durationMs)) {
      await new Promise((r) => setTimeout(r, options.tickMs ?? 1_000));
      // A terminal's Ctrl-C or hangup, `timeout` and a CI cancel signal the whole process group, the flow worker too
      // (SIGINT and SIGHUP end it, SIGTERM stops it): a tick after the signal failed on its exit, without the summary.
      if (stopping) break;
      lab.refresh();
      nodeByAddress = nodesByAddress(lab);
      const fresh: LabEvent[] = [];
      const events = readEvents(lab.id);
      fresh.push(...events.slice(consumed));
      consumed = events.length;
      const now = await routerNextHops(router, `${VIP_TCP.address}/32`);
      for (const gw of now.filter((g) => !hops.includes(g))) {
        fresh.push({ at: new Date().toISOString(), event: 'nextHopAdded', host: nodeByAddress.get(gw) ?? gw });
      }
      for (const gw of hops.filter((g) => !now.includes(g))) {
        fresh.push({ at: new Date().toISOString(), event: 'nextHopRemoved', host: nodeByAddress.get(gw) ?? gw });
      }
      hops = now;
      const summary = await summaryUnlessStopped();
      if (summary === undefined) break;
      seenSummary = summary;
      if (summary.broken > brokenBefore) {
        fresh.push({
          at: new Date().toISOString(),
          event: 'flowsBroken',
          detail: `${summary.broken - brokenBefore} more`,
        });
        brokenBefore = summary.broken;
      }
      timeline.push(...fresh);
      const tick: WatchTick = {
        at: new Date().toISOString(),
        summary,
        nextHops: now.map((g) => nodeByAddress.get(g) ?? g),
        events: fresh,
        nodes: hostsOfKind(lab.topology, 'node').map((n) => n.name),
        backends: hostsOfKind(lab.topology, 'backend').map((b) => b.name),
        down: [...lab.killed],
      };
      options.onTick?.(tick);
      options.write(options.json ? JSON.stringify(tick) : render(lab, tick, timeline, startedAt));
    }
    return { summary: (await summaryUnlessStopped()) ?? seenSummary };
  } finally {
    try {
      await flows.stop();
    } finally {
      removeHandlers();
    }
  }
}

/**
 * The longest pause `watch --check` accepts by default. A healthy lab meets it with room: a killed node costs ~0.7 s
 * with BFD and ~3.3 s without (the 3 s BGP hold time); a flow breaks only after 15 s without an answer
 * (DEFAULT_BROKEN_AFTER_MS), so without this bound a total outage shorter than that passed the check.
 */
export const DEFAULT_WATCH_MAX_PAUSE_MS = 5_000;

/** `watch --check`'s verdict on the flows at the end: fails on a broken flow, no open flow, or a pause over the bound. */
export function checkVerdict(s: FlowSummary, maxPauseMs: number): { ok: boolean; line: string } {
  const figures = `flows ${s.total}  open ${s.open}  broken ${s.broken}  longest pause ${s.longestPauseMs} ms, bound ${maxPauseMs} ms`;
  const why: string[] = [];
  if (s.open === 0) why.push('no flow is open');
  if (s.broken > 0) why.push(`${s.broken} flows broke`);
  if (s.longestPauseMs > maxPauseMs)
    why.push(`longest pause ${s.longestPauseMs} ms is more than --max-pause-ms ${maxPauseMs}`);
  return why.length === 0
    ? { ok: true, line: `watch --check: ok (${figures})` }
    : { ok: false, line: `watch --check: ${why.join('; ')} (${figures})` };
}

function nodesByAddress(lab: Lab): Map<string, string> {
  return new Map(
    hostsOfKind(lab.topology, 'node').map((n) => [attachmentOf(lab.topology, 'fabric', n.name).ipv4, n.name]),
  );
}

function bar(n: number, of: number, width = 30): string {
  const k = of === 0 ? 0 : Math.round((width * n) / of);
  return `${'#'.repeat(k)}${' '.repeat(width - k)}`;
}

/**
 * One frame of the live view (everything it shows is in `tick` and `timeline`, but the time since `startedAt`, a
 * performance.now() reading).
 */
export function render(
  lab: { readonly id: string; readonly mode: string },
  tick: WatchTick,
  timeline: readonly LabEvent[],
  startedAt: number,
): string {
  const s = tick.summary;
  const lines = [
    '\x1b[2J\x1b[H',
    `l4fleet lab "${lab.id}" (${lab.mode} mode)  up ${Math.round((performance.now() - startedAt) / 1000)} s   Ctrl-C to stop`,
    `flows ${s.total}  open ${s.open}  broken ${s.broken}  longest pause ${s.longestPauseMs} ms`,
    `router ECMP next hops for ${VIP_TCP.address}: ${tick.nextHops.join(', ') || '(none)'}`,
    '',
    'node        flows',
  ];
  for (const name of tick.nodes) {
    const count = s.perNode[name] ?? 0;
    const flag = tick.down.includes(name) ? ' killed' : tick.nextHops.includes(name) ? '' : ' (not in ECMP)';
    lines.push(`${name.padEnd(10)} ${String(count).padStart(6)} ${bar(count, s.open)}${flag}`);
  }
  if (s.perNode['?']) lines.push(`${'?'.padEnd(10)} ${String(s.perNode['?']).padStart(6)}`);
  lines.push('', 'backend     flows');
  // Every backend of the lab, also those without flows (just added, or failed), then any name only flows report.
  const backends = tick.backends;
  for (const name of [
    ...backends,
    ...Object.keys(s.perBackend)
      .filter((b) => !backends.includes(b))
      .sort(),
  ]) {
    const count = s.perBackend[name] ?? 0;
    const flag = tick.down.includes(name) ? ' failed' : '';
    lines.push(`${name.padEnd(10)} ${String(count).padStart(6)} ${bar(count, s.open)}${flag}`);
  }
  lines.push('', 'timeline');
  for (const e of timeline.slice(-12)) {
    const t = new Date(e.at).toISOString().slice(11, 19);
    lines.push(`${t}  ${e.event}${e.host ? ` ${e.host}` : ''}${e.detail ? ` (${e.detail})` : ''}`);
  }
  return lines.join('\n');
}
