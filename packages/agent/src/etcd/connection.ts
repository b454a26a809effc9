/**
 * The node's etcd session: registers the node on its lease, then watches the desired state, the decided status,
 * the node list and the table history, retrying each step until it works or the agent closes. Watch errors are sorted here: a record the
 * store rejected is reported (the last good state keeps serving), an unreachable etcd asks for a fail-static probe,
 * the rest is logged (the store's watches recover by themselves).
 */
import type {
  DecidedState,
  DesiredState,
  FleetStore,
  NodeView,
  StoreError,
  TableHistoryState,
  Watch,
} from '@l4fleet/store';
import type { Logger } from 'pino';
import { type Clock, sleep } from '../clock.js';
import type { DecidedFallback } from './decided-fallback.js';
import type { FailStatic } from './fail-static.js';
import { isRejectedRecord, type RecordFamily, type RejectedRecordsLog } from './rejected-records.js';
import type { Reports } from './reports.js';

/** Pause between attempts to register or to start the watches, ms. */
export const ETCD_RETRY_MS = 1_000;

export interface EtcdConnectionOptions {
  readonly store: FleetStore;
  readonly node: { readonly name: string; readonly address: string; readonly version?: string };
  /** Lease TTL of the registration (etcd.leaseTtlS), s. */
  readonly leaseTtlS: number;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly failStatic: FailStatic;
  readonly reports: Reports;
  readonly rejected: RejectedRecordsLog;
  readonly onDesired: (d: DesiredState) => void;
  readonly onDecided: (d: DecidedState) => void;
  /** Fills pools whose decided record was refused on the first read (decided-fallback.ts). */
  readonly decidedFallback?: DecidedFallback;
  readonly onNodes: (views: readonly NodeView[]) => void;
  /** The table history (second chance, 0011); a bad record keeps its pool's last good history. */
  readonly onHistory: (h: TableHistoryState) => void;
  /** A history record was refused (already reported): the aggregator, if leading, rewrites the last good one. */
  readonly onHistoryRejected?: () => void;
  /** The stored desired state was refused (INVALID_RECORD, or INVALID_STATE); nothing was delivered. */
  readonly onStateRejected: (err: StoreError) => void;
}

export interface EtcdConnection {
  /** Registers, then starts the watches; resolves once both worked, or when closed. */
  connect(): Promise<void>;
  close(): Promise<void>;
}

export function createEtcdConnection(opts: EtcdConnectionOptions): EtcdConnection {
  const { store, clock, failStatic, reports, rejected } = opts;
  const log = opts.logger;
  const watches: Watch[] = [];
  let closed = false;

  /** Handles what every watch may report; returns false for the errors left to the caller. */
  const common = (family: RecordFamily, err: StoreError): boolean => {
    if (!isRejectedRecord(err)) return false;
    rejected.report(family, err);
    return true;
  };

  /** The watches, in the order they start. */
  const starters: (() => Promise<Watch>)[] = [
    () =>
      store.watchDesired({
        onUpdate: opts.onDesired,
        onError: (err) => {
          if (isRejectedRecord(err) || err.code === 'INVALID_STATE') return opts.onStateRejected(err);
          log.warn({ event: 'desiredWatchError', code: err.code, err: err.message });
          // The stream's one member is gone; whether etcd is, the probe tells (fail-static.ts).
          if (err.code === 'UNAVAILABLE' || err.code === 'TIMEOUT') failStatic.probeNow('desiredWatchUnavailable');
        },
      }),
    () =>
      store.watchDecided({
        // The state names the pools whose record was refused with none served (refusedPools): the fallback fills them.
        onUpdate: (d) => opts.onDecided(opts.decidedFallback?.fill(d) ?? d),
        onError: (err) => {
          if (!common('decided', err)) log.warn({ event: 'decidedWatchError', code: err.code, err: err.message });
        },
      }),
    () =>
      store.watchNodes({
        onUpdate: opts.onNodes,
        onError: (err) => {
          if (!common('nodes', err)) log.warn({ event: 'nodesWatchError', code: err.code, err: err.message });
        },
      }),
    () =>
      store.watchTableHistory({
        onUpdate: opts.onHistory,
        onError: (err) => {
          if (common('history', err)) opts.onHistoryRejected?.();
          else log.warn({ event: 'historyWatchError', code: err.code, err: err.message });
        },
      }),
  ];

  /**
   * Starts the watches one after the other. close() may come while one starts: what resolves after it is closed at
   * once, or it would run on (a leaked etcd watch stream) after the agent stopped.
   */
  const startWatches = async (): Promise<void> => {
    for (const start of starters) {
      if (closed) return;
      const w = await start();
      if (closed) {
        await w.close().catch(() => undefined);
        return;
      }
      watches.push(w);
    }
  };

  const register = async (): Promise<void> => {
    const { name, address, version } = opts.node;
    while (!closed) {
      try {
        const registration = await store.registerNode(
          { name, address, ...(version ? { version } : {}) },
          {
            leaseTtlS: opts.leaseTtlS,
            onLeaseLost: (err) => {
              log.warn({ event: 'leaseLost', err: err.message });
              failStatic.setReachable(false, 'leaseLost');
            },
            onReregistered: () => {
              log.info({ event: 'reregistered' });
              reports.reregistered();
            },
          },
        );
        if (closed) {
          // close() came while registering: it found no registration to close, so this one would stay (its
          // keepalive running) after the agent stopped.
          await registration.close().catch(() => undefined);
          return;
        }
        reports.setRegistration(registration);
        failStatic.setReachable(true, 'registered');
        reports.health();
        reports.status();
        return;
      } catch (err) {
        failStatic.setReachable(false, 'registerFailed');
        log.warn({ event: 'registerFailed', err: (err as Error).message });
        await sleep(clock, ETCD_RETRY_MS);
      }
    }
  };

  return {
    async connect() {
      await register();
      while (!closed) {
        try {
          await startWatches();
          return;
        } catch (err) {
          for (const w of watches.splice(0)) await w.close().catch(() => undefined);
          failStatic.setReachable(false, 'watchFailed');
          log.warn({ event: 'watchStartFailed', err: (err as Error).message });
          await sleep(clock, ETCD_RETRY_MS);
        }
      }
    },
    async close() {
      closed = true;
      for (const w of watches.splice(0)) await w.close().catch(() => undefined);
      await reports.registration?.close().catch(() => undefined);
    },
  };
}
