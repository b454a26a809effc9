/**
 * The node's etcd session: registers the node on its lease, then watches the desired state, the decided status,
 * the node list and the table history, retrying each step until it works or the agent closes. Watch errors are sorted here: a record the
 * store rejected is reported (the last good state keeps serving), an unreachable etcd asks for a fail-static probe,
 * the rest is logged (the store's watches recover by themselves). A node.name another agent holds (CONFLICT) is no
 * outage: etcd answered, so no fail-static; the node stays unregistered (no watches, not ready: it must not serve
 * under a name another node has), says so with what to do, and asks again less and less often. A node already
 * serving (from its state file, or registered and then its re-registration refused, or its record found held by
 * another address) learns the name is taken instead: nodeNameTaken (an error) and onNameTaken, and no watches.
 */
import {
  type DecidedState,
  type DesiredState,
  type FleetStore,
  isNameTaken,
  type NodeView,
  type StoreError,
  type TableHistoryState,
  type Watch,
} from '@l4fleet/store';
import type { Logger } from 'pino';
import { type Clock, sleep } from '../clock.js';
import type { DecidedFallback } from './decided-fallback.js';
import type { FailStatic } from './fail-static.js';
import { isRejectedRecord, type RecordFamily, type RejectedRecordsLog } from './rejected-records.js';
import type { Reports } from './reports.js';

/** Pause between attempts to register or to start the watches, ms. */
export const ETCD_RETRY_MS = 1_000;
/**
 * While another agent holds node.name, the pause between attempts doubles from ETCD_RETRY_MS up to the lease TTL
 * (the holder's record goes within its TTL when it is gone), but never past REGISTER_REFUSED_MAX_MS: a TTL of up
 * to 3,600 s must not keep a node out an hour after the name is free.
 */
export const REGISTER_REFUSED_MAX_MS = 30_000;
/** A refusal by the same holder is warned again (with the count since) at most this often, ms. */
export const REGISTER_REFUSED_WARN_MS = 60_000;

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
  /** The node serves its state file (started without etcd): a refused node.name then is taken (onNameTaken). */
  readonly servingStateFile?: () => boolean;
  /**
   * Called once when this serving node's node.name turns out held by another address (the CONFLICT naming the key
   * and the holder): the node must stop acting as that node (the agent drains and exits). Registration stops.
   */
  readonly onNameTaken?: (err: StoreError) => void;
}

export interface EtcdConnection {
  /** Registers, then starts the watches; resolves once both worked, or when closed, or when the name is taken. */
  connect(): Promise<void>;
  /** The name was found held by another address while serving (onNameTaken was called): nothing more starts. */
  readonly nameTaken: boolean;
  close(): Promise<void>;
}

export function createEtcdConnection(opts: EtcdConnectionOptions): EtcdConnection {
  const { store, clock, failStatic, reports, rejected } = opts;
  const log = opts.logger;
  const watches: Watch[] = [];
  let closed = false;
  /** The name was found taken while serving (nameTaken): no more attempts, no watches. */
  let taken = false;

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

  const refusedMaxMs = Math.min(REGISTER_REFUSED_MAX_MS, Math.max(ETCD_RETRY_MS, opts.leaseTtlS * 1000));
  /** What to do about a refused name, in the warning (the store's message names the key and the holder). */
  const refusedHint = (key: string): string =>
    `node names must be unique: give this node its own node.name, or stop the agent holding the name. If the holder ` +
    `is this host under its old node.address (the address edited after a crash, or a replacement host), its record ` +
    `goes when its lease expires (within its etcd.leaseTtlS; ${opts.leaseTtlS} s here), or delete it now: ` +
    `etcdctl del <etcd.prefix>/v1/${key} (etcd.prefix: /l4fleet by default). Tried again every ` +
    `${refusedMaxMs / 1_000} s at most`;
  /** The refusals of node.name in a row: each holder (its message) warned once, again after REGISTER_REFUSED_WARN_MS. */
  const refusals = { inRow: 0, sinceWarned: 0, warnedFor: '', warnedAtMs: 0 };

  /** Logs a refusal of node.name and returns the pause before the next attempt, ms. */
  const refused = (err: StoreError): number => {
    refusals.inRow += 1;
    refusals.sinceWarned += 1;
    const retryMs = Math.min(ETCD_RETRY_MS * 2 ** (refusals.inRow - 1), refusedMaxMs);
    const now = clock.monoMs();
    const warn = err.message !== refusals.warnedFor || now - refusals.warnedAtMs >= REGISTER_REFUSED_WARN_MS;
    const key = err.key ?? `nodes/${opts.node.name}`;
    log[warn ? 'warn' : 'debug']({
      event: 'registerRefused',
      key,
      refusals: refusals.sinceWarned,
      retryMs,
      err: err.message,
      ...(warn ? { hint: refusedHint(key) } : {}),
    });
    if (warn) Object.assign(refusals, { sinceWarned: 0, warnedFor: err.message, warnedAtMs: now });
    return retryMs;
  };

  /** The name is another node's while this one serves: said as an error, once, and handed to the agent. */
  const nameTaken = (err: StoreError): void => {
    if (taken || closed) return;
    taken = true;
    const key = err.key ?? `nodes/${opts.node.name}`;
    log.error({ event: 'nodeNameTaken', key, err: err.message, action: 'stop acting as this node' });
    opts.onNameTaken?.(err);
  };

  const register = async (): Promise<void> => {
    const { name, address, version } = opts.node;
    /** Fenced writes of the record lost in a row (the record changed since it was read). */
    let raced = 0;
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
            onNameTaken: nameTaken,
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
        if (refusals.inRow > 0) log.info({ event: 'registeredAfterRefusals', refusals: refusals.inRow });
        reports.health();
        reports.status();
        return;
      } catch (err) {
        if (isNameTaken(err)) {
          raced = 0;
          // etcd answered: the name is taken, which fail-static (serving as if etcd were away) does not help.
          failStatic.setReachable(true, 'registerRefused');
          // Serving the state file under the name: it is another node's, so this one stops, not waits.
          if (opts.servingStateFile?.()) return nameTaken(err);
          await sleep(clock, refused(err));
          continue;
        }
        if ((err as StoreError).code === 'CONFLICT') {
          // The record changed between the store's read and its fenced write (this node's previous lease expiring
          // after a quick restart, or another agent registering): no refusal, and no outage. Tried again at once (it
          // reads the record again: a holder at another address is refused then), after ETCD_RETRY_MS if it recurs.
          raced += 1;
          failStatic.setReachable(true, 'registerRaced');
          log.info({ event: 'registerRaced', err: (err as Error).message });
          if (raced > 1) await sleep(clock, ETCD_RETRY_MS);
          continue;
        }
        raced = 0;
        refusals.inRow = 0;
        failStatic.setReachable(false, 'registerFailed');
        log.warn({ event: 'registerFailed', err: (err as Error).message });
        await sleep(clock, ETCD_RETRY_MS);
      }
    }
  };

  return {
    get nameTaken() {
      return taken;
    },
    async connect() {
      await register();
      while (!closed && !taken) {
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
