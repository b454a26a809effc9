/**
 * The flow generator, run inside the client namespace: long-lived TCP flows and UDP "flows" (a connected socket with a
 * fixed source port) that send a small message every `intervalMs` and read the identity server's answers.
 * It measures only what the client can see: which backend answers, gaps between answers, resets and timeouts.
 *
 * Gaps are measured on a steady clock (performance.now()): on the wall clock an NTP step forward made a pause of the
 * step's length (a lab run failing on a flow that never paused) and a step back hid a real one. The wall clock is kept
 * for the times a report writes out (`at`, `markAt`, `openedAt`).
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect, type Socket } from 'node:net';
import type { FlowProtocol, FlowSample, FlowState, FlowTarget, WorkerReport } from './types.js';

export const DEFAULT_FLOW_INTERVAL_MS = 50;
/** No answer for this long and the flow counts as broken (TCP: closed by us). */
export const DEFAULT_BROKEN_AFTER_MS = 15_000;

export interface FlowWorkerOptions {
  readonly tcp?: FlowTarget | undefined;
  readonly udp?: FlowTarget | undefined;
  readonly intervalMs?: number;
  readonly brokenAfterMs?: number;
  /** The wall clock, ms since the epoch, for times written out; default Date.now. */
  readonly now?: () => number;
  /** A steady clock, ms, for gaps between answers; default performance.now. */
  readonly monoMs?: () => number;
}

class Flow {
  state: FlowState = 'connecting';
  reason: string | undefined;
  backend: string | undefined;
  readonly backends = new Set<string>();
  replies = 0;
  /** On the steady clock (opts.monoMs). */
  lastReplyAtMs: number;
  maxPauseMs = 0;
  localPort = 0;
  localAddress = '';
  private timer: NodeJS.Timeout | undefined;
  private seq = 0;
  private tcp: Socket | undefined;
  private udp: UdpSocket | undefined;
  private buffer = '';

  constructor(
    readonly id: number,
    readonly protocol: FlowProtocol,
    readonly target: FlowTarget,
    readonly openedAt: number,
    private readonly opts: Required<Omit<FlowWorkerOptions, 'tcp' | 'udp'>>,
    /** The worker's mark count when the flow was opened: it is new while no mark came after it. */
    readonly openedAfterMark: number,
  ) {
    this.lastReplyAtMs = opts.monoMs();
  }

  start(): void {
    if (this.protocol === 'tcp') this.startTcp();
    else this.startUdp();
    // Spread the sends over the interval so 250 flows do not fire in one burst.
    const offset = Math.floor(Math.random() * this.opts.intervalMs);
    setTimeout(() => {
      if (this.state === 'closed' || this.state === 'broken') return;
      this.timer = setInterval(() => this.tick(), this.opts.intervalMs);
    }, offset).unref();
  }

  private startTcp(): void {
    const s = connect({ host: this.target.address, port: this.target.port });
    this.tcp = s;
    s.setNoDelay(true);
    s.on('connect', () => {
      this.localPort = s.localPort ?? 0;
      this.localAddress = s.localAddress ?? '';
      this.state = 'open';
    });
    s.on('data', (d: Buffer) => {
      this.buffer += d.toString();
      let nl = this.buffer.indexOf('\n');
      while (nl >= 0) {
        this.onLine(this.buffer.slice(0, nl));
        this.buffer = this.buffer.slice(nl + 1);
        nl = this.buffer.indexOf('\n');
      }
    });
    s.on('error', (err: NodeJS.ErrnoException) =>
      this.break(err.code === 'ECONNRESET' ? 'reset' : (err.code ?? 'error')),
    );
    s.on('close', () => this.break('closed'));
  }

  private startUdp(): void {
    const s = createSocket(this.target.address.includes(':') ? 'udp6' : 'udp4');
    this.udp = s;
    s.on('message', (msg) => {
      const text = msg.toString();
      const m = /^backend=(\S+) /.exec(text);
      if (m?.[1]) this.onBackend(m[1]);
      this.onReply();
    });
    s.on('error', () => {});
    s.connect(this.target.port, this.target.address, () => {
      const a = s.address();
      this.localPort = a.port;
      this.localAddress = a.address;
      this.state = 'open';
    });
  }

  private onLine(line: string): void {
    const m = /^backend=(\S+)$/.exec(line);
    if (m?.[1]) this.onBackend(m[1]);
    this.onReply();
  }

  private onBackend(name: string): void {
    if (this.backend !== undefined && this.backend !== name && this.state !== 'broken') {
      // UDP has no connection to reset: an answer from another backend is how a UDP flow breaks.
      this.state = 'broken';
      this.reason = 'backend changed';
    }
    this.backend = name;
    this.backends.add(name);
  }

  private onReply(): void {
    const nowMs = this.opts.monoMs();
    if (this.replies > 0) this.maxPauseMs = Math.max(this.maxPauseMs, nowMs - this.lastReplyAtMs);
    this.replies++;
    this.lastReplyAtMs = nowMs;
  }

  private tick(): void {
    if (this.state === 'open' && this.opts.monoMs() - this.lastReplyAtMs > this.opts.brokenAfterMs) {
      this.break('timeout');
      return;
    }
    const payload = `${++this.seq}\n`;
    if (this.tcp && this.state === 'open') this.tcp.write(payload);
    if (this.udp && (this.state === 'open' || this.reason === 'backend changed')) {
      try {
        this.udp.send(payload);
      } catch {
        // An ICMP error (no route, port unreachable) can leave the socket unconnected for a moment: a lost datagram.
      }
    }
  }

  private break(reason: string): void {
    if (this.state === 'closed' || this.state === 'broken') return;
    // The gap open when the flow breaks is its last pause (often the one that broke it): once broken, `sample` no
    // longer counts an ongoing gap, so it goes into maxPauseMs here.
    if (this.replies > 0) this.maxPauseMs = Math.max(this.maxPauseMs, this.opts.monoMs() - this.lastReplyAtMs);
    this.state = 'broken';
    this.reason = reason;
    this.tcp?.destroy();
  }

  /** Restarts the pause window (a gap open at the mark still counts from its start: at most one interval). */
  mark(): void {
    this.maxPauseMs = 0;
  }

  /** `nowMs`: the steady clock's reading (opts.monoMs), for the gap still open. */
  sample(nowMs: number, marks: number): FlowSample {
    const ongoing = this.state === 'open' && this.replies > 0 ? nowMs - this.lastReplyAtMs : 0;
    return {
      id: this.id,
      protocol: this.protocol,
      localPort: this.localPort,
      localAddress: this.localAddress,
      target: `${this.target.address}:${this.target.port}`,
      backend: this.backend,
      state: this.state,
      ...(this.reason ? { reason: this.reason } : {}),
      replies: this.replies,
      // Whole ms: the steady clock reads fractions, and the report (lab flows on NATS, the dashboard) carries counts.
      maxPauseMs: Math.round(Math.max(this.maxPauseMs, ongoing)),
      openedAt: this.openedAt,
      sinceMark: this.openedAfterMark === marks,
      backends: [...this.backends],
    };
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.state !== 'broken') this.state = 'closed';
    this.tcp?.destroy();
    try {
      this.udp?.close();
    } catch {
      // already closed
    }
  }
}

export class FlowWorker {
  private readonly flows: Flow[] = [];
  private markAt: number;
  /** Marks so far: which flows are new is counted in marks, not compared in wall-clock times (an NTP step). */
  private marks = 0;
  private readonly opts: Required<Omit<FlowWorkerOptions, 'tcp' | 'udp'>>;

  constructor(private readonly options: FlowWorkerOptions) {
    this.opts = {
      intervalMs: options.intervalMs ?? DEFAULT_FLOW_INTERVAL_MS,
      brokenAfterMs: options.brokenAfterMs ?? DEFAULT_BROKEN_AFTER_MS,
      now: options.now ?? Date.now,
      monoMs: options.monoMs ?? (() => performance.now()),
    };
    this.markAt = this.opts.now();
  }

  /** Opens `tcp` more TCP flows and `udp` more UDP flows. */
  open(tcp: number, udp: number): void {
    const now = this.opts.now();
    const add = (protocol: FlowProtocol, target: FlowTarget | undefined, count: number) => {
      if (!target) return;
      for (let i = 0; i < count; i++) {
        const flow = new Flow(this.flows.length + 1, protocol, target, now, this.opts, this.marks);
        this.flows.push(flow);
        flow.start();
      }
    };
    add('tcp', this.options.tcp, tcp);
    add('udp', this.options.udp, udp);
  }

  mark(): void {
    this.markAt = this.opts.now();
    this.marks += 1;
    for (const f of this.flows) f.mark();
  }

  report(): WorkerReport {
    const nowMs = this.opts.monoMs();
    return { at: this.opts.now(), markAt: this.markAt, flows: this.flows.map((f) => f.sample(nowMs, this.marks)) };
  }

  stop(): WorkerReport {
    for (const f of this.flows) f.stop();
    return this.report();
  }
}
