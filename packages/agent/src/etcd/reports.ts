/**
 * What the node writes about itself into etcd, on its registration lease: its health view (the aggregator's input)
 * and its status record (what `l4fleet status` shows). Both are batched (one write for a burst of changes), one
 * write in flight each, retried after a failure by one timer each: changes while etcd is away do not each start
 * another retry loop. A failing health report is a warning once per outage, debug while it goes on.
 */
import type { MemberStatus } from '@l4fleet/config';
import type { NodeRegistration, NodeStatusReport } from '@l4fleet/store';
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import type { ObservedStatus } from '../health/hysteresis.js';

/** Health reports to etcd are batched this long, ms (one write for a burst of changes). */
export const HEALTH_REPORT_DELAY_MS = 20;
/** Status record writes are batched this long, ms. */
export const STATUS_REPORT_DELAY_MS = 100;
/** A failed report is tried again after this long, ms. */
export const REPORT_RETRY_MS = 1_000;
/**
 * A status record beyond this many bytes (JSON, UTF-8) is not sent: @l4fleet/store's MAX_TXN_BYTES (1 MiB), what one
 * write may carry under etcd's default --max-request-bytes (1.5 MiB). etcd would refuse it on every retry, naming no
 * key or size; the log line here names both, and the next change of the status record tries again.
 */
export const MAX_STATUS_BYTES = 1024 * 1024;

export interface ReportsOptions {
  readonly clock: Clock;
  readonly logger: Logger;
  /** This node's health view (unknown members are not reported). */
  readonly observed: () => ReadonlyMap<string, ObservedStatus>;
  /** The status record as of now. */
  readonly status: () => NodeStatusReport;
}

export interface Reports {
  /** The node is registered (again): reports go to this lease from now on. */
  setRegistration(r: NodeRegistration): void;
  /** The registration got a new lease (written with the records it kept): both reports are written again. */
  reregistered(): void;
  readonly registration: NodeRegistration | undefined;
  /** Something in the health view changed. */
  health(): void;
  /** Something in the status record changed. */
  status(): void;
  close(): void;
}

export function createReports(opts: ReportsOptions): Reports {
  const { clock } = opts;
  const log = opts.logger;
  let registration: NodeRegistration | undefined;
  let healthTimer: unknown;
  let statusTimer: unknown;
  /**
   * The one retry of each report after a failed write, re-armed (never added to) by the next failure: a timer per
   * failure made every change during an etcd outage one more endless loop of failing writes and warnings.
   */
  let healthRetryTimer: unknown;
  let statusRetryTimer: unknown;
  /** Health writes failed in a row: the first is a warning, the others debug (the outage was said once). */
  let healthFailures = 0;
  let healthWriting = false;
  let statusWriting = false;
  /** The status record changed while a write was in flight. */
  let statusChanged = false;
  /**
   * The last record etcd took, without its `at`: the same record again is not written. Passes run each second while
   * gobgpd is away (routes pending) and each asks for a status: an unchanged one would be a put a second per node, and
   * an event to every watcher. Forgotten with a new registration or lease (it starts with the record the registration
   * kept, which may be a later one whose write failed) and after a failed write (the registration keeps the failed
   * record for its next lease, and etcd may have committed it): either may differ from what etcd last confirmed.
   */
  let lastWritten: string | undefined;
  let closed = false;

  function scheduleHealth(): void {
    if (healthTimer !== undefined || closed) return;
    healthTimer = clock.setTimeout(() => {
      healthTimer = undefined;
      void writeHealth();
    }, HEALTH_REPORT_DELAY_MS);
  }

  async function writeHealth(): Promise<void> {
    if (!registration || healthWriting) {
      if (healthWriting) scheduleHealth();
      return;
    }
    healthWriting = true;
    const view = new Map<string, MemberStatus>();
    for (const [k, s] of opts.observed()) if (s !== 'unknown') view.set(k, s);
    try {
      await registration.reportHealth(view);
      if (healthFailures > 0) log.info({ event: 'healthReportResumed', failures: healthFailures });
      healthFailures = 0;
      clock.clearTimeout(healthRetryTimer);
      healthRetryTimer = undefined;
    } catch (err) {
      healthFailures += 1;
      log[healthFailures === 1 ? 'warn' : 'debug']({
        event: 'healthReportFailed',
        failures: healthFailures,
        err: (err as Error).message,
      });
      clock.clearTimeout(healthRetryTimer);
      healthRetryTimer = clock.setTimeout(() => {
        healthRetryTimer = undefined;
        scheduleHealth();
      }, REPORT_RETRY_MS);
    } finally {
      healthWriting = false;
    }
  }

  function scheduleStatus(): void {
    if (statusTimer !== undefined || closed) return;
    statusTimer = clock.setTimeout(() => {
      statusTimer = undefined;
      void writeStatus();
    }, STATUS_REPORT_DELAY_MS);
  }

  /**
   * One status write in flight: with etcd slower than the batching delay a second write could go out and the older
   * one commit last, leaving the record on an old revision until the next change. A change meanwhile is written
   * once this one settled, with the record as of then.
   */
  async function writeStatus(): Promise<void> {
    const reg = registration;
    if (!reg || closed) return;
    if (statusWriting) {
      statusChanged = true;
      return;
    }
    const status = opts.status();
    const { at: _at, ...record } = status;
    const key = JSON.stringify(record);
    if (key === lastWritten) return;
    const bytes = Buffer.byteLength(JSON.stringify(status));
    if (bytes > MAX_STATUS_BYTES) {
      log.error({ event: 'statusReportTooLarge', bytes, maxBytes: MAX_STATUS_BYTES });
      return;
    }
    statusWriting = true;
    statusChanged = false;
    try {
      await reg.reportStatus(status);
      lastWritten = key;
      clock.clearTimeout(statusRetryTimer);
      statusRetryTimer = undefined;
    } catch (err) {
      log.debug({ event: 'statusReportFailed', err: (err as Error).message });
      lastWritten = undefined;
      statusChanged = false;
      clock.clearTimeout(statusRetryTimer);
      statusRetryTimer = clock.setTimeout(() => {
        statusRetryTimer = undefined;
        scheduleStatus();
      }, REPORT_RETRY_MS);
      return;
    } finally {
      statusWriting = false;
    }
    if (statusChanged) {
      statusChanged = false;
      scheduleStatus();
    }
  }

  return {
    setRegistration(r) {
      registration = r;
      lastWritten = undefined;
    },
    reregistered() {
      lastWritten = undefined;
      scheduleHealth();
      scheduleStatus();
    },
    get registration() {
      return registration;
    },
    health: scheduleHealth,
    status: scheduleStatus,
    close() {
      closed = true;
      clock.clearTimeout(healthTimer);
      clock.clearTimeout(statusTimer);
      clock.clearTimeout(healthRetryTimer);
      clock.clearTimeout(statusRetryTimer);
    },
  };
}
