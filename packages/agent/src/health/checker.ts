/**
 * Probes every target on its own timer (the pool's intervalMs), at most `maxConcurrentProbes` at once, and feeds the
 * results through rise/fall hysteresis. setTargets() takes the whole desired set: a target whose endpoint and check
 * are unchanged keeps its hysteresis state, so a fleet change elsewhere never resets a member's status.
 *
 * A member with several checks (`pools[].additionalHealthChecks`) runs each on its own timer and hysteresis; the
 * member is observed down as soon as one check is down and up once every check is up (F5's availability "all");
 * with `pools[].healthChecksRequired` N, up once N checks are up and down once more than M - N are down (N can no
 * longer pass). Between the two (a check just added, still deciding) it keeps its last status, so adding a check to a
 * pool never flaps its members; a new endpoint starts from `unknown`.
 *
 * A check with an `address` of its own (a dependency every member shares: F5's alias address) probes the same thing
 * whichever member it is for, so it runs once per node, not once per member: one timer and one hysteresis feed every
 * member (of any pool) that has the same check, and a pool of 1,000 members costs its database one probe per interval
 * from each node instead of 1,000.
 */
import { checkLabel, type HealthCheck } from '@l4fleet/config';
import type { Logger } from 'pino';
import { type Clock, systemClock } from '../clock.js';
import { DEFAULT_MAX_CONCURRENT_PROBES } from '../config/defaults.js';
import { Hysteresis, type ObservedStatus } from './hysteresis.js';
import { type Probe, type ProbeOptions, type ProbeResult, type ProbeTarget, probeMember } from './probe.js';
import { STOPPED_REASON } from './probe-common.js';
import { type ProbeFailure, shortReason } from './probe-failures.js';

export { MAX_PROBE_REASON_CHARS, type ProbeFailure, probeFailuresReport } from './probe-failures.js';

export interface HealthTarget {
  /** memberKey(pool, member): `${pool}/${member}`. */
  readonly key: string;
  readonly address: string;
  readonly port: number;
  /** The checks it must pass, healthChecksOf(pool): the first is the pool's healthCheck. */
  readonly checks: readonly HealthCheck[];
  /** How many of `checks` it must pass to be up, healthChecksRequiredOf(pool); absent: all. */
  readonly required?: number;
}

export interface HealthObservation {
  readonly key: string;
  /** One probe of one check; its reason names the check when the member has more than one (checkLabel). */
  readonly result: ProbeResult;
  /** The member's status, all its checks combined. */
  readonly status: ObservedStatus;
  /** The status changed with this result. */
  readonly changed: boolean;
  readonly atMs: number;
}

export interface HealthCheckerOptions {
  /**
   * Each member's view of each probe (a shared check feeds every member that has it), and a member whose endpoint
   * changed, reset to `unknown` (ENDPOINT_CHANGED_REASON) without a probe.
   */
  readonly onObservation: (o: HealthObservation) => void;
  /** Once per probe finished, however many members it feeds: l4fleet_health_probes_total. */
  readonly onProbe?: (result: ProbeResult) => void;
  readonly logger: Logger;
  readonly probe?: Probe;
  readonly clock?: Clock;
  readonly maxConcurrentProbes?: number;
  readonly sourceAddress?: string;
  /** Roots for https checks with verifyCertificate (the agent's health.caFile, read at start). */
  readonly ca?: Buffer;
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
  /**
   * The source address, roots and concurrency bound of every probe from now on (a reload's `health.sourceAddress`,
   * `health.caFile` and `health.maxConcurrentProbes`); probes in flight finish with what they started with (a lower
   * bound holds once enough of them have ended). The checks, their timers and hysteresis are untouched.
   */
  setProbeOptions(o: {
    readonly sourceAddress?: string;
    readonly ca?: Buffer;
    readonly maxConcurrentProbes?: number;
  }): void;
  close(): void;
}

/** One check of one member, or of every member that shares it (a check with an `address`). */
interface Running {
  /** What it probes: the member, or the check's own address. */
  readonly target: ProbeTarget;
  readonly check: HealthCheck;
  /**
   * The members it feeds, each with how its failures are named there: `check N of M (...)`, or '' when the member has
   * one check; follows the members' checks (setTargets).
   */
  members: ReadonlyMap<string, string>;
  readonly identity: string;
  readonly hysteresis: Hysteresis;
  /**
   * Set when it went down (the probe's own reason, unlabelled); cleared when it comes back. `sinceMono` (steady time)
   * orders a member's failed checks: a wall-clock step between two failures must not make the later one look older.
   */
  failure: (ProbeFailure & { readonly sinceMono: number }) | undefined;
  timer: unknown;
  stopped: boolean;
  /** Aborts the probe in flight (stop()): it closes its socket and gives back its slot now, not at its timeoutMs. */
  probing: AbortController | undefined;
}

/** A member's combined status and the endpoint it belongs to (a new endpoint starts from `unknown`). */
interface MemberState {
  endpoint: string;
  status: ObservedStatus;
  /** Checks it must pass (HealthTarget.required, at most its number of checks); follows setTargets. */
  required: number;
}

const endpointOf = (t: HealthTarget): string => JSON.stringify([t.address, t.port]);

/** The result of the observation that resets a member whose address or port changed: no probe of it has run yet. */
export const ENDPOINT_CHANGED_REASON = 'endpoint changed: not probed yet';

/**
 * Where check `index` of member `t` runs: a check with an `address` under one key for every member (`@` and the check),
 * any other under the member's (`pool/member` for the first, `pool/member#2`...). A changed identity starts it over.
 */
function runOf(
  t: HealthTarget,
  check: HealthCheck,
  index: number,
): { key: string; identity: string; target: ProbeTarget } {
  if (check.address !== undefined) {
    const identity = JSON.stringify(check);
    return { key: `@${identity}`, identity, target: { address: check.address, port: check.port ?? t.port } };
  }
  return {
    key: index === 0 ? t.key : `${t.key}#${index + 1}`,
    identity: JSON.stringify([t.address, t.port, check]),
    target: { address: t.address, port: t.port },
  };
}

const labelled = (label: string, reason: string | undefined): string =>
  label ? `${label}: ${reason ?? 'failed'}` : (reason ?? 'failed');

/**
 * Up once `required` checks are up; down once so many are down that `required` cannot be up (with all required: any
 * one); else the last status (a check still deciding changes nothing).
 */
function combined(checks: readonly Running[], required: number, last: ObservedStatus): ObservedStatus {
  const need = Math.min(Math.max(1, required), checks.length);
  const down = checks.filter((r) => r.hysteresis.status === 'down').length;
  if (checks.length > 0 && down > checks.length - need) return 'down';
  if (checks.length > 0 && checks.filter((r) => r.hysteresis.status === 'up').length >= need) return 'up';
  return last;
}

/** Spreads first probes over the interval by key, so 1,000 members do not fire in the same millisecond. */
function offsetMs(key: string, intervalMs: number): number {
  let h = 2166136261;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 16777619) >>> 0;
  return h % Math.max(1, Math.floor(intervalMs / 2));
}

export function createHealthChecker(opts: HealthCheckerOptions): HealthChecker {
  const optionsOf = (o: { readonly sourceAddress?: string | undefined; readonly ca?: Buffer | undefined }) => ({
    ...(o.sourceAddress ? { sourceAddress: o.sourceAddress } : {}),
    ...(o.ca ? { ca: o.ca } : {}),
  });
  let probeOptions: ProbeOptions = optionsOf(opts);
  const clock = opts.clock ?? systemClock;
  const probe = opts.probe ?? probeMember;
  let limit = opts.maxConcurrentProbes ?? DEFAULT_MAX_CONCURRENT_PROBES;
  const log = opts.logger;
  /** Per check: `member` for the first, `member#2`... for the others. */
  const running = new Map<string, Running>();
  /** Per member key: its checks, in order. */
  const byMember = new Map<string, Running[]>();
  const members = new Map<string, MemberState>();
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
    // Over a bound lowered meanwhile: the slot goes, no waiter takes it.
    const next = inFlight > limit ? undefined : waiting.shift();
    if (next) next();
    else inFlight -= 1;
  };
  /** A raised bound lets waiting probes start now. */
  const admitWaiting = (): void => {
    while (inFlight < limit && waiting.length > 0) {
      inFlight += 1;
      waiting.shift()?.();
    }
  };

  const schedule = (r: Running, delayMs: number): void => {
    if (r.stopped) return;
    r.timer = clock.setTimeout(() => void runOnce(r), delayMs);
  };

  const runOnce = async (r: Running): Promise<void> => {
    // Steady time: a wall-clock step while the probe runs (NTP) must not stretch or skip the wait to the next one.
    const startedMs = clock.monoMs();
    await acquire();
    let result: ProbeResult;
    try {
      if (r.stopped) result = { ok: false, latencyMs: 0, reason: STOPPED_REASON };
      else {
        r.probing = new AbortController();
        result = await probe(r.target, r.check, { ...probeOptions, signal: r.probing.signal });
      }
    } catch (err) {
      result = { ok: false, latencyMs: 0, reason: err instanceof Error ? err.message : String(err) };
    } finally {
      r.probing = undefined;
      release();
    }
    if (r.stopped || closed) return;
    probesTotal += 1;
    try {
      opts.onProbe?.(result);
    } catch (err) {
      log.error({ event: 'healthObserverFailed', err });
    }
    const checkChangedTo = r.hysteresis.observe(result.ok);
    if (checkChangedTo === 'down') {
      r.failure = { reason: result.reason ?? 'failed', sinceMs: clock.now(), sinceMono: clock.monoMs() };
    } else if (checkChangedTo) r.failure = undefined;
    for (const [key, label] of r.members) observeMember(key, r, label, result);
    const elapsedMs = clock.monoMs() - startedMs;
    schedule(r, Math.min(r.check.intervalMs, Math.max(0, r.check.intervalMs - elapsedMs)));
  };

  /** One member's view of one probe of one of its checks: its combined status, and the observation. */
  const notify = (o: HealthObservation): void => {
    try {
      opts.onObservation(o);
    } catch (err) {
      log.error({ event: 'healthObserverFailed', err });
    }
  };

  const observeMember = (key: string, r: Running, label: string, probed: ProbeResult): void => {
    const result = probed.ok ? probed : { ...probed, reason: labelled(label, probed.reason) };
    const member = members.get(key);
    const before = member?.status ?? 'unknown';
    const after = combined(byMember.get(key) ?? [r], member?.required ?? 1, before);
    if (member) member.status = after;
    const changed = after !== before;
    if (changed) log.info({ event: 'memberObserved', member: key, status: after, reason: result.reason });
    notify({ key, result, status: after, changed, atMs: clock.now() });
  };

  /**
   * No more probes of `r`, and its probe in flight ends now: a hung member removed, or a check whose too-long timeoutMs
   * was just fixed, would otherwise keep its socket and its concurrency slot for up to that timeoutMs (an hour), while
   * every other pool's probes queue behind it. Its `stopped` result is dropped (runOnce).
   */
  const stop = (r: Running): void => {
    r.stopped = true;
    clock.clearTimeout(r.timer);
    r.probing?.abort();
  };

  return {
    setProbeOptions(o) {
      probeOptions = optionsOf(o);
      if (o.maxConcurrentProbes !== undefined) {
        limit = o.maxConcurrentProbes;
        admitWaiting();
      }
    },
    setTargets(targets) {
      if (closed) return;
      type Wanted = ReturnType<typeof runOf> & { check: HealthCheck; members: Map<string, string> };
      const wanted = new Map<string, Wanted>();
      /** Per member: its target and the keys of its checks' runs, in order. */
      const wantedMembers = new Map<string, { t: HealthTarget; runs: string[] }>();
      for (const t of targets) {
        const checks = t.checks.filter((c) => c.type !== 'none');
        if (checks.length === 0) continue;
        const runs: string[] = [];
        checks.forEach((check, i) => {
          const run = runOf(t, check, i);
          const w = wanted.get(run.key) ?? { ...run, check, members: new Map<string, string>() };
          w.members.set(t.key, checkLabel(check, i, checks.length));
          wanted.set(run.key, w);
          runs.push(run.key);
        });
        wantedMembers.set(t.key, { t, runs });
      }
      for (const [key, r] of running) {
        const w = wanted.get(key);
        if (!w || w.identity !== r.identity) {
          stop(r);
          running.delete(key);
        } else r.members = w.members;
      }
      for (const [key, w] of wanted) {
        if (running.has(key)) continue;
        const r: Running = {
          target: w.target,
          check: w.check,
          members: w.members,
          identity: w.identity,
          hysteresis: new Hysteresis(w.check.rise, w.check.fall),
          failure: undefined,
          timer: undefined,
          stopped: false,
          probing: undefined,
        };
        running.set(key, r);
        schedule(r, offsetMs(key, w.check.intervalMs));
      }
      byMember.clear();
      /** Members whose endpoint changed from a decided status: said once the state is whole. */
      const reset: string[] = [];
      for (const [key, { t, runs: runKeys }] of wantedMembers) {
        const runs = runKeys.map((k) => running.get(k)).filter((r): r is Running => r !== undefined);
        byMember.set(key, runs);
        const m = members.get(key);
        const required = Math.min(t.required ?? runs.length, runs.length);
        if (!m || m.endpoint !== endpointOf(t)) {
          if (m && m.status !== 'unknown') reset.push(key);
          members.set(key, { endpoint: endpointOf(t), status: 'unknown', required });
        } else m.required = required;
      }
      for (const key of members.keys()) if (!wantedMembers.has(key)) members.delete(key);
      // The old endpoint's status is not the new one's: its metric, the aggregator's input, the etcd report and
      // probeFailures must not keep it until rise or fall probes of the new endpoint.
      for (const key of reset) {
        log.info({ event: 'memberObserved', member: key, status: 'unknown', reason: ENDPOINT_CHANGED_REASON });
        const result = { ok: false, latencyMs: 0, reason: ENDPOINT_CHANGED_REASON };
        notify({ key, result, status: 'unknown', changed: true, atMs: clock.now() });
      }
    },
    observed() {
      return new Map([...members].map(([k, m]) => [k, m.status]));
    },
    failures() {
      // The member's failure: that of its check down longest (the one that took it down while others still pass), by
      // steady time (a wall-clock step back would make a later failure look older; its wall-clock sinceMs is only the
      // time written out); when it need not pass all its checks, how many are down, since one failed check alone does
      // not take it down.
      const out = new Map<string, ProbeFailure>();
      for (const [key, m] of members) {
        if (m.status !== 'down') continue;
        const runs = byMember.get(key) ?? [];
        const downs = runs.filter((r) => r.failure !== undefined);
        const first = downs.reduce<Running | undefined>(
          (a, r) => (a?.failure && r.failure && a.failure.sinceMono <= r.failure.sinceMono ? a : r),
          undefined,
        );
        if (!first?.failure) continue;
        const reason = labelled(first.members.get(key) ?? '', first.failure.reason);
        const counted =
          m.required < runs.length ? `${downs.length} of ${runs.length} checks down (${m.required} must pass): ` : '';
        out.set(key, { reason: shortReason(counted + reason), sinceMs: first.failure.sinceMs });
      }
      return out;
    },
    get probesTotal() {
      return probesTotal;
    },
    close() {
      closed = true;
      for (const r of running.values()) stop(r);
      running.clear();
      byMember.clear();
      members.clear();
    },
  };
}
