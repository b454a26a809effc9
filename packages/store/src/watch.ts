/**
 * A watch that never loses nor repeats an event. etcd3's watcher reconnects by itself, but it restarts from the
 * revision in the last response header, which after a reconnect can skip events still in flight. So on every
 * disconnect this cancels it and re-creates it from (last delivered mod_revision + 1), drops any event at or below
 * that revision, and on a compacted revision asks the owner to re-read everything (etcd API: a watch from a
 * compacted revision is cancelled with compact_revision set).
 *
 * etcd 3.4 cancels such a watch with compact_revision set but an empty cancel_reason, and etcd3 1.1 drops
 * compact_revision: all we get is `Watcher canceled: `. So a cancel by the server is checked with a range read at
 * the resume revision: compacted means resync, anything else a plain restart. A quiet prefix would otherwise fall
 * behind the compaction for ever (its resume revision moves only on its own events), so progress notifications
 * (a response without events, sent only to a watcher that is caught up) advance the resume revision too.
 *
 * An outage is reported once: the first disconnect (or failed resync) is warned and handed to onError, repeats of the
 * same kind, one per retry until etcd is back, are debug-logged. Each retry used to be a warning and an onError, and
 * every watch of the agent, the aggregator and the dashboard (each warning again) repeated it: lines per second per
 * node for the whole outage. The watch is back when etcd acknowledges its creation ('connected': a quiet prefix gets
 * no data after a reconnect) or sends data; the next failure is reported again.
 *
 * A handler that throws does not end the watch: onEvents' error goes to onError, and onError's own is logged
 * (`watchHandlerFailed`); the later batches are still delivered.
 */
import type { Namespace, Watcher } from 'etcd3';
import type { Logger } from 'pino';
import { StoreError, type StoreErrorCode, toStoreError } from './errors.js';

export interface WatchEvent {
  readonly type: 'put' | 'delete';
  /** Key relative to the namespace. */
  readonly key: string;
  readonly value: Buffer;
  readonly modRevision: number;
  readonly createRevision: number;
}

export interface ResumableWatchHandlers {
  /** Events of one watch response, in revision order, all newer than anything delivered before. */
  onEvents(events: readonly WatchEvent[]): void | Promise<void>;
  /** The resume revision was compacted: re-read the state and return the revision to continue after. */
  resync(): Promise<number>;
  onError(err: StoreError): void;
}

const RETRY_MIN_MS = 100;
const RETRY_MAX_MS = 2_000;
/** etcd3's message for a cancel by the server (its cancel_reason follows, empty for a compacted start revision). */
const SERVER_CANCEL = /Watcher canceled/;
/**
 * How long close() waits for etcd to acknowledge the watch's cancel, in ms. The wait only lets etcd drop the
 * watcher in order; nothing is lost without it (a later event of the watch is dropped here, and the store's close
 * ends the stream, which frees the watcher on etcd's side). An etcd that answers does so in milliseconds; one that
 * hangs never does, and an unbounded wait left close() (an agent's shutdown) hanging with it. 1 s, not the attempt
 * deadline: the store closes its watches one after another.
 */
export const WATCH_CANCEL_WAIT_MS = 1_000;

/** The first line of what a handler threw, for a log line. */
function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message.split('\n')[0] ?? '';
  try {
    return String(err).split('\n')[0] ?? '';
  } catch {
    return 'not an Error'; // String() throws on an object without a prototype
  }
}

export class ResumableWatch {
  private watcher: Watcher | undefined;
  private closed = false;
  private retryMs = RETRY_MIN_MS;
  private chain: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  /** Code of the failure reported for the outage under way (disconnects, failed resyncs); undefined while live. */
  private outage: StoreErrorCode | undefined;

  /** `afterRevision`: every event with mod_revision > afterRevision is delivered. */
  constructor(
    private readonly ns: Namespace,
    private readonly target: { readonly prefix: string } | { readonly key: string },
    private afterRevision: number,
    private readonly handlers: ResumableWatchHandlers,
    private readonly log: Logger,
  ) {}

  /** The last revision delivered (or resynced to). */
  get revision(): number {
    return this.afterRevision;
  }

  start(): void {
    if (this.closed) return;
    const b = this.ns.watch();
    if ('prefix' in this.target) b.prefix(this.target.prefix);
    else b.key(this.target.key);
    const w = b.startRevision(String(this.afterRevision + 1)).watcher();
    this.watcher = w;
    w.on('connected', () => {
      if (this.watcher === w) this.recovered();
    });
    w.on('data', (res) => {
      if (this.watcher !== w) return;
      this.retryMs = RETRY_MIN_MS;
      this.recovered();
      if (res.events.length === 0) {
        // A progress notification: etcd sends it only to a caught-up watcher, so nothing at or below the header's
        // revision is still to come. (Not done for responses with events: a catching-up watcher gets the current
        // revision in the header while later events of its range are still to be sent.)
        const headerRevision = Number(res.header?.revision ?? 0);
        if (headerRevision > this.afterRevision) this.afterRevision = headerRevision;
        return;
      }
      const events: WatchEvent[] = [];
      for (const ev of res.events) {
        const modRevision = Number(ev.kv.mod_revision);
        if (modRevision <= this.afterRevision) continue; // a replay after reconnect: delivered already
        events.push({
          type: ev.type === 'Put' ? 'put' : 'delete',
          key: ev.kv.key.toString(),
          value: ev.kv.value,
          modRevision,
          createRevision: Number(ev.kv.create_revision),
        });
      }
      if (events.length === 0) return;
      this.afterRevision = (events[events.length - 1] as WatchEvent).modRevision;
      // Serialize handlers: an async handler (reading a generation) must finish before the next batch. report()
      // never throws, so the chain never stays rejected (which skipped every later batch).
      this.chain = this.chain
        .then(() => this.handlers.onEvents(events))
        .catch((err) => this.report(toStoreError(err, 'watch handler')));
    });
    w.on('disconnected', (err) => {
      if (this.watcher !== w || this.closed) return;
      this.failed('watchDisconnected', toStoreError(err, 'watch'));
      this.restart(w, false);
    });
    w.on('error', (err) => {
      if (this.watcher !== w || this.closed) return;
      const mapped = toStoreError(err, 'watch');
      if (mapped.code === 'INTERNAL' && SERVER_CANCEL.test(mapped.message)) {
        this.restartAfterCancel(w, mapped);
        return;
      }
      this.report(mapped);
      this.restart(w, mapped.code === 'COMPACTED');
    });
  }

  /**
   * The server cancelled the watch without saying why (etcd 3.4 on a compacted start revision): a range read at the
   * resume revision tells whether it was compacted (then resync) or not (then a plain restart).
   */
  private restartAfterCancel(old: Watcher, cancel: StoreError): void {
    this.watcher = undefined;
    old.removeAllListeners('data');
    const probeKey = 'prefix' in this.target ? this.target.prefix : this.target.key;
    const at = this.afterRevision + 1;
    this.chain = this.chain
      .then(() => this.ns.get(probeKey).revision(at).exec())
      .then(
        () => false,
        (err) => toStoreError(err, `watch resume check at revision ${at}`).code === 'COMPACTED',
      )
      .then((compacted) => {
        if (this.closed) return;
        if (compacted) {
          this.report(
            new StoreError('COMPACTED', `etcd watch: resume revision ${at} was compacted; re-reading everything`, {
              cause: cancel,
            }),
          );
        } else {
          this.report(cancel);
        }
        this.restart(old, compacted);
      })
      .catch((err) => {
        // Nothing above should throw; if it does, say so rather than leave an unhandled rejection (fatal in Node).
        this.log.error({ event: 'watchRestartFailed', after: this.afterRevision, err: messageOf(err) });
      });
  }

  /**
   * Hands `err` to onError; a handler that throws is logged, not thrown on: thrown into etcd3's event emitter or a
   * promise chain it ended the watch (every later batch skipped) and, as an unhandled rejection, the process.
   */
  private report(err: StoreError): void {
    try {
      this.handlers.onError(err);
    } catch (thrown) {
      this.log.error({ event: 'watchHandlerFailed', handler: 'onError', code: err.code, err: messageOf(thrown) });
    }
  }

  /**
   * A disconnect or a failed resync: reported (warned, and handed to onError) when it starts an outage or is of
   * another kind than the one reported; a repeat is debug-logged. Callers marking state on onError (a probe asked
   * for, a warning) see the first failure of each outage.
   */
  private failed(event: string, err: StoreError): void {
    const line = { event, after: this.afterRevision, code: err.code, err: err.message };
    if (this.outage === err.code) {
      this.log.debug(line);
      return;
    }
    this.outage = err.code;
    this.log.warn(line);
    this.report(err);
  }

  /** The watch is live again: the next failure starts a new outage. */
  private recovered(): void {
    if (this.outage === undefined) return;
    this.outage = undefined;
    this.log.info({ event: 'watchReconnected', after: this.afterRevision });
  }

  private restart(old: Watcher, resync: boolean): void {
    this.watcher = undefined;
    old.removeAllListeners('data');
    old.cancel().catch(() => undefined);
    const delay = this.retryMs;
    this.retryMs = Math.min(RETRY_MAX_MS, this.retryMs * 2);
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        if (this.closed) return;
        if (!resync) {
          this.start();
          return;
        }
        this.chain = this.chain
          .then(async () => {
            this.afterRevision = await this.handlers.resync();
            this.log.info({ event: 'watchResynced', after: this.afterRevision });
            this.start();
          })
          .catch((err) => {
            if (this.closed) return;
            this.failed('watchResyncFailed', toStoreError(err, 'watch resync'));
            this.restartLater();
          });
      },
      resync ? 0 : delay,
    );
  }

  private restartLater(): void {
    // A resync failed (etcd still down): try again with backoff.
    const delay = this.retryMs;
    this.retryMs = Math.min(RETRY_MAX_MS, this.retryMs * 2);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.closed) return;
      this.chain = this.chain
        .then(async () => {
          this.afterRevision = await this.handlers.resync();
          this.start();
        })
        .catch((err) => {
          if (this.closed) return;
          this.failed('watchResyncFailed', toStoreError(err, 'watch resync'));
          this.restartLater();
        });
    }, delay);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    const w = this.watcher;
    this.watcher = undefined;
    if (w) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        w.cancel().catch(() => undefined),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, WATCH_CANCEL_WAIT_MS);
        }),
      ]);
      clearTimeout(timer);
    }
    await this.chain.catch(() => undefined);
  }
}
