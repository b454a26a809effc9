/**
 * Records the store refused (bad shape, size claims that do not hold, bad checksum): the store reports each one
 * through the watch's onError as StoreError `INVALID_RECORD` and does not deliver it, so the node keeps serving its
 * last good state. Here each one becomes a log line, an event, a metric and a line in the node's status record,
 * so an operator learns that someone wrote a bad key (issue 12: "a bad record is reported").
 */
import { escapeControls } from '@l4fleet/config';
import type { StoreError, StoreErrorCode } from '@l4fleet/store';
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import type { EventPublisher } from '../events/publisher.js';
import type { AgentMetrics } from '../observe/metrics.js';

/** StoreError code of a record the store rejected (@l4fleet/store, issue 12). */
export const INVALID_RECORD = 'INVALID_RECORD' satisfies StoreErrorCode;

/** Which watch the record came through (the etcd key family: docs/design/0003 layout). */
export type RecordFamily = 'desired' | 'decided' | 'nodes' | 'health' | 'election' | 'history';

/** The node's account of rejected records, in its status record (`l4fleet status -o json`). */
export interface RejectedRecords {
  /** Records rejected since the agent started. */
  readonly total: number;
  readonly byFamily: Readonly<Partial<Record<RecordFamily, number>>>;
  /**
   * The most recent one: its family and key, the store's message (key, field and value) and when, ISO; key and
   * message with control characters as `\uXXXX`, cut to MAX_REJECTED_KEY_CHARS / MAX_REJECTED_ERROR_CHARS.
   */
  readonly last: {
    readonly family: RecordFamily;
    readonly key?: string;
    readonly code: string;
    readonly error: string;
    readonly at: string;
  };
}

export interface RejectedRecordsOptions {
  readonly clock: Clock;
  readonly logger: Logger;
  readonly events: EventPublisher;
  readonly metrics: AgentMetrics;
  /** The status record changed. */
  readonly onChange: () => void;
}

export interface RejectedRecordsLog {
  /** Reports `err` for `family` (log, event, metric, status); the caller keeps its last good state. */
  report(family: RecordFamily, err: StoreError): void;
  /** Counts `err` in the status record only (an error reported elsewhere already, e.g. INVALID_STATE). */
  note(family: RecordFamily, err: StoreError): void;
  /** undefined until a record was rejected. */
  readonly summary: RejectedRecords | undefined;
}

/**
 * A rejected record's key and the store's message are cut to these lengths, chars, wherever they go (log, event,
 * status record): a hand-written 800 KB key made the status record 1.6 MB, which etcd refused on every write, and
 * the event was beyond NATS's 1 MB payload. Enough to name any key l4fleet writes and the field and value.
 */
export const MAX_REJECTED_KEY_CHARS = 256;
export const MAX_REJECTED_ERROR_CHARS = 512;

/** `text` when at most `max` chars, else its first `max` chars and how long it was, so the reader knows it was cut. */
export function cutText(text: string, max: number): string {
  if (text.length <= max) return text;
  return `${text.slice(0, max)}... (cut: ${text.length.toLocaleString('en-US')} chars)`;
}

/** Whether `err` is the store's report of a record it rejected. */
export function isRejectedRecord(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === INVALID_RECORD;
}

export function createRejectedRecords(opts: RejectedRecordsOptions): RejectedRecordsLog {
  const byFamily: Partial<Record<RecordFamily, number>> = {};
  let total = 0;
  let last: RejectedRecords['last'] | undefined;

  /**
   * The key (when known) and the message, control characters escaped, then cut to their bounds. An etcd key holds
   * any bytes: JSON (pino's, the event's, the status record's) escapes C0 only, and a CSI (U+009B) in a hand-written
   * key reached the log, NATS and `l4fleet status` raw. err.key keeps it as it is.
   */
  const described = (err: StoreError): { key?: string; error: string } => ({
    ...(err.key ? { key: cutText(escapeControls(err.key), MAX_REJECTED_KEY_CHARS) } : {}),
    error: cutText(escapeControls(err.message), MAX_REJECTED_ERROR_CHARS),
  });

  const note = (family: RecordFamily, err: StoreError): void => {
    total += 1;
    byFamily[family] = (byFamily[family] ?? 0) + 1;
    const at = new Date(opts.clock.now()).toISOString();
    const { key, error } = described(err);
    last = { family, ...(key ? { key } : {}), code: err.code, error, at };
    opts.onChange();
  };

  return {
    report(family, err) {
      opts.metrics.storeRejectedRecordsTotal.inc({ family });
      const { key, error } = described(err);
      const k = key ? { key } : {};
      opts.logger.error({ event: 'recordRejected', family, ...k, code: err.code, err: error });
      opts.events.emit('record.rejected', { family, ...k, code: err.code, error });
      note(family, err);
    },
    note,
    get summary() {
      return last ? { total, byFamily: { ...byFamily }, last } : undefined;
    },
  };
}
