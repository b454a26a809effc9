/**
 * Whether etcd answers, and fail-static while it does not: the node keeps serving its last good tables and routes
 * (0006 "Faults"). Evidence comes from a periodic probe (`getLeader`, bounded by etcdProbeTimeoutMs) and from the
 * other controllers (registration failing, lease loss). A watch stream that broke is not evidence by itself: with
 * several endpoints it broke because its one member died, and the store moves it to another; it asks for a probe
 * now (probeNow), which reads through every endpoint and decides.
 */
import type { FleetStore, StoreError } from '@l4fleet/store';
import type { Logger } from 'pino';
import { type Clock, withTimeout } from '../clock.js';
import type { AgentMetrics } from '../observe/metrics.js';
import { isRejectedRecord } from './rejected-records.js';

/** How often the agent checks that etcd answers (fail-static detection), ms. */
export const ETCD_PROBE_INTERVAL_MS = 1_000;
/** Room for the store's pause before it moves a call to the next endpoint (100 ms, doubling), ms. */
export const ETCD_PROBE_RETRY_SLACK_MS = 500;

/**
 * How long a probe may take before the node goes fail-static, ms. With one endpoint: one dial timeout. With several,
 * a probe may draw a dead or hung member first (every client's shuffle does, until the store has marked it down);
 * the store abandons it after one dial timeout and asks the next member, and that second attempt must fit too, or
 * losing one member of three would look like losing etcd.
 */
export function etcdProbeTimeoutMs(dialTimeoutMs: number, endpoints: number): number {
  return endpoints > 1 ? 2 * dialTimeoutMs + ETCD_PROBE_RETRY_SLACK_MS : dialTimeoutMs;
}

export interface FailStaticOptions {
  readonly store: Pick<FleetStore, 'getLeader'>;
  readonly clock: Clock;
  /** A probe without an answer this long counts as unreachable, ms (etcd.dialTimeoutMs). */
  readonly probeTimeoutMs: number;
  readonly metrics: AgentMetrics;
  readonly logger: Logger;
  /** The revision served (logged on entering and leaving fail-static). */
  readonly revision: () => number;
  /** Fail-static was entered or left. */
  readonly onFailStatic: (failStatic: boolean, why: string) => void;
  /** etcd stopped answering (called once per outage). */
  readonly onUnreachable?: (why: string) => void;
  /** A probe was answered. */
  readonly onAnswered?: () => void;
  /** The probe read an election record the store refused: etcd answered, the record is reported. */
  readonly onRejectedRecord?: (err: StoreError) => void;
}

export interface FailStatic {
  readonly etcdOk: boolean;
  readonly failStatic: boolean;
  /** Evidence from elsewhere: `ok` false enters fail-static, true leaves it; `why` is logged. */
  setReachable(ok: boolean, why: string): void;
  /** Probes after `delayMs`, then every ETCD_PROBE_INTERVAL_MS until close(). */
  startProbing(delayMs?: number): void;
  /** Something suggested etcd is gone (`why`, logged): probe now, unless a probe is under way (it decides). */
  probeNow(why: string): void;
  close(): void;
}

export function createFailStatic(opts: FailStaticOptions): FailStatic {
  const { clock, metrics } = opts;
  const log = opts.logger;
  let etcdOk = true;
  let failStatic = false;
  let closed = false;
  let probing = false;
  let timer: unknown;
  metrics.etcdConnected.set(1);

  const setReachable = (ok: boolean, why: string): void => {
    if (ok === etcdOk) return;
    etcdOk = ok;
    metrics.etcdConnected.set(ok ? 1 : 0);
    if (!ok !== failStatic) {
      failStatic = !ok;
      metrics.failStatic.set(failStatic ? 1 : 0);
      if (failStatic) metrics.failStaticEnteredTotal.inc();
      const revision = opts.revision();
      if (failStatic) log.warn({ event: 'failStaticEntered', reason: why, revision });
      else log.info({ event: 'failStaticLeft', reason: why, revision });
      opts.onFailStatic(failStatic, why);
    }
    if (!ok) opts.onUnreachable?.(why);
  };

  // One chain of probes: a probe under way schedules the next itself, so a timer that fires meanwhile is dropped.
  const probe = async (): Promise<void> => {
    if (closed || probing) return;
    probing = true;
    try {
      await withTimeout(clock, opts.store.getLeader(), opts.probeTimeoutMs, 'etcd probe');
      setReachable(true, 'etcdAnswers');
      opts.onAnswered?.();
    } catch (err) {
      if (isRejectedRecord(err) && opts.onRejectedRecord) {
        // A bad key is not an outage: fail-static would hide the record behind "etcd unreachable".
        setReachable(true, 'etcdAnswers');
        opts.onRejectedRecord(err as StoreError);
      } else {
        setReachable(false, `etcdUnreachable: ${(err as Error).message}`);
      }
    } finally {
      probing = false;
    }
    clock.clearTimeout(timer);
    if (!closed) timer = clock.setTimeout(() => void probe(), ETCD_PROBE_INTERVAL_MS);
  };

  return {
    get etcdOk() {
      return etcdOk;
    },
    get failStatic() {
      return failStatic;
    },
    setReachable,
    startProbing(delayMs = ETCD_PROBE_INTERVAL_MS) {
      if (closed) return;
      clock.clearTimeout(timer);
      timer = clock.setTimeout(() => void probe(), delayMs);
    },
    probeNow(why) {
      if (closed || probing) return;
      log.info({ event: 'etcdProbeRequested', reason: why });
      void probe();
    },
    close() {
      closed = true;
      clock.clearTimeout(timer);
    },
  };
}
