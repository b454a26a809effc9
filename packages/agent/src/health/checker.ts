/**
 * Probes every target on its own timer (the pool's intervalMs), at most `maxConcurrentProbes` at once, and feeds the
 * results through rise/fall hysteresis. setTargets() takes the whole desired set: a target whose endpoint and check
 * are unchanged keeps its hysteresis state, so a fleet change elsewhere never resets a member's status.
 */
import type { HealthCheck } from '@l4fleet/config';
import { MAX_PROBE_FAILURES_PER_STATUS } from '@l4fleet/store';
import type { Logger } from 'pino';
import { type Clock, systemClock } from '../clock.js';
import { Hysteresis, type ObservedStatus } from './hysteresis.js';
import { type Probe, type ProbeOptions, type ProbeResult, probeMember } from './probe.js';

export interface HealthTarget {
  /** memberKey(pool, member): `${pool}/${member}`. */
  readonly key: string;
  readonly address: string;
  readonly port: number;
  readonly check: HealthCheck;
}

export interface HealthObservation {
  readonly key: string;
  readonly result: ProbeResult;
  readonly status: ObservedStatus;
  /** The status changed with this result. */
  readonly changed: boolean;
  readonly atMs: number;
}

export interface HealthCheckerOptions {
  readonly onObservation: (o: HealthObservation) => void;
  readonly logger: Logger;
  readonly probe?: Probe;
  readonly clock?: Clock;
  readonly maxConcurrentProbes?: number;
  readonly sourceAddress?: string;
  /** Roots for https checks with verifyCertificate (the agent's health.caFile, read at start). */
  readonly ca?: Buffer;
}

/** Why this node sees a member down: the reason of the probe that took it down, and when. */
export interface ProbeFailure {
  readonly reason: string;
  readonly sinceMs: number;
}

export interface HealthChecker {
  setTargets(targets: readonly HealthTarget[]): void;
  /** Current observed status per target key. */
  observed(): Map<string, ObservedStatus>;
  /**
   * The targets observed down, with the reason of the probe that took each down. It stays that reason while the
   * member stays down (a later probe failing another way does not rewrite it), so the status record changes only
   * when a member goes down or comes back.
   */
  failures(): Map<string, ProbeFailure>;
  /** Probes finished since start, for metrics. */
  readonly probesTotal: number;
  close(): void;
}

interface Running {
  readonly target: HealthTarget;
  readonly identity: string;
  readonly hysteresis: Hysteresis;
  /** Set when it went down; cleared when it comes back. */
  failure: ProbeFailure | undefined;
  timer: unknown;
  stopped: boolean;
}

const identityOf = (t: HealthTarget): string => JSON.stringify([t.address, t.port, t.check]);

/** Spreads first probes over the interval by key, so 1,000 members do not fire in the same millisecond. */
function offsetMs(key: string, intervalMs: number): number {
  let h = 2166136261;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 16777619) >>> 0;
  return h % Math.max(1, Math.floor(intervalMs / 2));
}

export function createHealthChecker(opts: HealthCheckerOptions): HealthChecker {
  const probeOptions: ProbeOptions = {
    ...(opts.sourceAddress ? { sourceAddress: opts.sourceAddress } : {}),
    ...(opts.ca ? { ca: opts.ca } : {}),
  };
  const clock = opts.clock ?? systemClock;
  const probe = opts.probe ?? probeMember;
  const limit = opts.maxConcurrentProbes ?? 256;
  const log = opts.logger;
  const running = new Map<string, Running>();
  const waiting: (() => void)[] = [];
  let inFlight = 0;
  let probesTotal = 0;
  let closed = false;

  const acquire = (): Promise<void> => {
    if (inFlight < limit) {
      inFlight += 1;
      return Promise.resolve();
    }
    return new Promise((resolve) => waiting.push(resolve));
  };
  const release = (): void => {
    const next = waiting.shift();
    if (next) next();
    else inFlight -= 1;
  };

  const schedule = (r: Running, delayMs: number): void => {
    if (r.stopped) return;
    r.timer = clock.setTimeout(() => void runOnce(r), delayMs);
  };

  const runOnce = async (r: Running): Promise<void> => {
    const startedMs = clock.now();
    await acquire();
    let result: ProbeResult;
    try {
      result = r.stopped
        ? { ok: false, latencyMs: 0, reason: 'stopped' }
        : await probe(r.target, r.target.check, probeOptions);
    } catch (err) {
      result = { ok: false, latencyMs: 0, reason: err instanceof Error ? err.message : String(err) };
    } finally {
      release();
    }
    if (r.stopped || closed) return;
    probesTotal += 1;
    const changedTo = r.hysteresis.observe(result.ok);
    if (changedTo === 'down') r.failure = { reason: shortReason(result.reason), sinceMs: clock.now() };
    else if (changedTo) r.failure = undefined;
    if (changedTo) {
      log.info({ event: 'memberObserved', member: r.target.key, status: changedTo, reason: result.reason });
    }
    try {
      opts.onObservation({
        key: r.target.key,
        result,
        status: r.hysteresis.status,
        changed: changedTo !== undefined,
        atMs: clock.now(),
      });
    } catch (err) {
      log.error({ event: 'healthObserverFailed', err });
    }
    const elapsed = clock.now() - startedMs;
    schedule(r, Math.max(0, r.target.check.intervalMs - elapsed));
  };

  const stop = (r: Running): void => {
    r.stopped = true;
    clock.clearTimeout(r.timer);
  };

  return {
    setTargets(targets) {
      if (closed) return;
      const wanted = new Map(targets.filter((t) => t.check.type !== 'none').map((t) => [t.key, t]));
      for (const [key, r] of running) {
        const t = wanted.get(key);
        if (!t || identityOf(t) !== r.identity) {
          stop(r);
          running.delete(key);
        }
      }
      for (const [key, t] of wanted) {
        if (running.has(key)) continue;
        const r: Running = {
          target: t,
          identity: identityOf(t),
          hysteresis: new Hysteresis(t.check.rise, t.check.fall),
          failure: undefined,
          timer: undefined,
          stopped: false,
        };
        running.set(key, r);
        schedule(r, offsetMs(key, t.check.intervalMs));
      }
    },
    observed() {
      return new Map([...running].map(([k, r]) => [k, r.hysteresis.status]));
    },
    failures() {
      return new Map([...running].flatMap(([k, r]) => (r.failure ? [[k, r.failure] as const] : [])));
    },
    get probesTotal() {
      return probesTotal;
    },
    close() {
      closed = true;
      for (const r of running.values()) stop(r);
      running.clear();
    },
  };
}

/**
 * A reason as the status record keeps it: at most MAX_PROBE_REASON_CHARS (the store refuses a status with a text over
 * 1,024 characters; an error message from a library could be longer).
 */
export const MAX_PROBE_REASON_CHARS = 200;
function shortReason(reason: string | undefined): string {
  const r = reason ?? 'failed';
  return r.length <= MAX_PROBE_REASON_CHARS ? r : `${r.slice(0, MAX_PROBE_REASON_CHARS - 3)}...`;
}

/**
 * The status record's `probeFailures` (@l4fleet/store NodeStatusReport): at most MAX_PROBE_FAILURES_PER_STATUS,
 * the first by key, the rest counted; nothing when no member is down.
 */
export function probeFailuresReport(failures: ReadonlyMap<string, ProbeFailure>): {
  probeFailures?: Record<string, ProbeFailure>;
  probeFailuresOmitted?: number;
} {
  if (failures.size === 0) return {};
  const keys = [...failures.keys()].sort().slice(0, MAX_PROBE_FAILURES_PER_STATUS);
  const omitted = failures.size - keys.length;
  return {
    probeFailures: Object.fromEntries(keys.map((k) => [k, failures.get(k) as ProbeFailure])),
    ...(omitted > 0 ? { probeFailuresOmitted: omitted } : {}),
  };
}
