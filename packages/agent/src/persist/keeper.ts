/**
 * The last good inputs on disk (0006 "Last good state on disk"): restores them when the agent starts without
 * etcd, and saves what etcd delivered (batched, one write in flight, refreshed hourly, or every state.maxAgeS / 2 if
 * that is sooner, so the file's age means "last confirmed against etcd"). A failed save is retried on a backoff; a
 * state too large for the file is not, until the inputs change. Without a state file store every call is a no-op.
 */
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import type { AgentError } from '../errors.js';
import { type AgentMetrics, recordDecided } from '../observe/metrics.js';
import type { ServedInputs } from '../serve/inputs.js';
import { isStateNotSavable, type LastState, type LastStateStore } from './last-state.js';

/** State file writes are batched this long, ms (a burst of decisions is one write). */
export const STATE_SAVE_DELAY_MS = 1_000;
/** An unchanged state file is rewritten this often while etcd answers, so its age says "confirmed recently", ms. */
export const STATE_REFRESH_MS = 3_600_000;
/** The first retry after a failed save waits this long; each failure after it doubles the wait, ms. */
export const STATE_RETRY_MIN_MS = 1_000;
/** The longest wait between retries of a save that keeps failing (a full or read-only disk), ms (1 min). */
export const STATE_RETRY_MAX_MS = 60_000;

/**
 * How often an unchanged file is rewritten while etcd answers, ms: hourly, or every half of state.maxAgeS when that is
 * shorter. A refresh only every hour with maxAgeS 600 would leave a quiet fleet's file unloadable 50 minutes an hour
 * although etcd confirmed it every second; half the bound leaves room for a refresh that is late or fails once.
 */
export function stateRefreshMs(maxAgeS: number): number {
  return maxAgeS > 0 ? Math.min(STATE_REFRESH_MS, (maxAgeS * 1000) / 2) : STATE_REFRESH_MS;
}

/** The wait before the next save after `failures` failed ones in a row, ms. */
const retryDelayMs = (failures: number): number =>
  Math.min(STATE_RETRY_MAX_MS, STATE_RETRY_MIN_MS * 2 ** Math.min(failures - 1, 16));

export interface LastStateKeeperOptions {
  /** undefined: nothing is saved or restored. */
  readonly file: LastStateStore | undefined;
  readonly inputs: ServedInputs;
  readonly clock: Clock;
  readonly metrics: AgentMetrics;
  readonly logger: Logger;
  /** The file's age bound (state.maxAgeS), s; 0 = never stale. Sets how often an unchanged file is rewritten. */
  readonly maxAgeS: number;
  /** Whether a restored file may still be served (the node is starting and etcd has not delivered every input). */
  readonly mayRestore: () => boolean;
  /** The file's inputs are now the served inputs. */
  readonly onRestored: () => void;
}

export interface LastStateKeeper {
  readonly enabled: boolean;
  /** Resolves once inputs were restored from the file (never, if they were not). */
  readonly restored: Promise<void>;
  /**
   * Loads the file once and, if it is valid and mayRestore() still holds, serves it in place of every input etcd has
   * not delivered yet.
   */
  restore(why: string): Promise<void>;
  /** After each input etcd delivered: once all four came from etcd, the file is replaced and saving resumes. */
  etcdInputArrived(): void;
  /** etcd answered: rewrite an unchanged file once it is stateRefreshMs(maxAgeS) old. */
  etcdAnswered(): void;
  close(): void;
}

export function createLastStateKeeper(opts: LastStateKeeperOptions): LastStateKeeper {
  const { file, inputs, clock, metrics } = opts;
  const log = opts.logger;
  let restoreTried = false;
  let closed = false;
  let timer: unknown;
  let saving = false;
  let savedKey = '';
  let savedAtMs = 0;
  const refreshMs = stateRefreshMs(opts.maxAgeS);
  /** Failed saves in a row (0 after a save worked). */
  let failures = 0;
  /**
   * No save starts before this, on the steady clock (monoMs), ms: the backoff after a failure. On the wall clock a step
   * back of an hour would make the next retry wait an hour more.
   */
  let retryAtMs = 0;
  /** The inputs' key of a state that cannot be saved (over state.maxBytes): tried again only once the key changes. */
  let refusedKey: string | undefined;
  /**
   * The saved file is refreshMs old, or the clock stepped back past its savedAt: rewrite it. A negative age is
   * no young file: the loader refuses savedAt in the future (STATE_FUTURE_TOLERANCE_MS), and waiting for the clock to
   * catch up would leave it refused that long.
   */
  const refreshDue = (now: number): boolean => now - savedAtMs >= refreshMs || now < savedAtMs;
  let onRestored: () => void = () => undefined;
  const restored = new Promise<void>((resolve) => (onRestored = resolve));

  async function restore(why: string): Promise<void> {
    if (!file || restoreTried || closed) return;
    restoreTried = true;
    let s: LastState | undefined;
    try {
      s = await file.load();
    } catch (err) {
      const code = (err as AgentError).code;
      log.error({ event: 'lastStateIgnored', file: file.path, code, err: (err as Error).message });
      return;
    }
    if (!s) {
      log.warn({ event: 'lastStateMissing', file: file.path, reason: why });
      return;
    }
    // etcd may have answered while the file was read: its inputs win.
    if (closed || !opts.mayRestore()) return;
    const taken = inputs.restore(s);
    if (taken.length === 0) return;
    const ageS = Math.max(0, Math.round((clock.now() - s.savedAt) / 1000));
    metrics.lastStateServing.set(1);
    metrics.lastStateAgeSeconds.set(ageS);
    recordDecided(metrics, inputs.decided, inputs.ramps);
    log.warn({
      event: 'lastStateRestored',
      file: file.path,
      revision: s.revision,
      // Fewer than four when etcd delivered some before it was lost, or refused the desired state: etcd's stay.
      inputs: taken,
      savedAt: new Date(s.savedAt).toISOString(),
      ageS,
      vips: s.fleet.vips.length,
      drained: s.drained,
      reason: why,
    });
    opts.onRestored();
    onRestored();
  }

  /** A save after STATE_SAVE_DELAY_MS, or when the backoff after a failure ends if that is later. */
  function scheduleSave(): void {
    if (!file || timer !== undefined || closed) return;
    timer = clock.setTimeout(
      () => {
        timer = undefined;
        void save();
      },
      Math.max(STATE_SAVE_DELAY_MS, retryAtMs - clock.monoMs()),
    );
  }

  /**
   * A save failed: the next waits retryDelayMs, whether or not one ever worked (a quiet fleet gives no other reason to
   * try again, and etcd answering every second must not mean a write and a warning every second). A state over
   * state.maxBytes is the same size when tried again: it waits for new inputs (etcdInputArrived) instead.
   */
  function saveFailed(err: unknown, key: string): void {
    failures += 1;
    const delayMs = retryDelayMs(failures);
    retryAtMs = clock.monoMs() + delayMs;
    metrics.lastStateSavesTotal.inc({ result: 'error' });
    const notSavable = isStateNotSavable(err);
    log.warn({
      event: 'lastStateSaveFailed',
      file: file?.path,
      err: (err as Error).message,
      failures,
      ...(notSavable ? { retry: 'when the inputs change' } : { retryInMs: delayMs }),
    });
    if (notSavable) {
      refusedKey = key;
      return;
    }
    // A save scheduled while this one ran would come before the backoff ends.
    clock.clearTimeout(timer);
    timer = undefined;
    scheduleSave();
  }

  async function save(): Promise<void> {
    const { fleet, revision, generation, decided, ramps, history, drainFlag } = inputs;
    // Only inputs read from etcd are saved: re-saving the file's own inputs would make a stale file look fresh.
    if (!file || !fleet || revision === 0 || inputs.source === 'lastState' || closed) return;
    if (!inputs.allFromEtcd) return;
    if (saving) {
      scheduleSave();
      return;
    }
    const key = inputs.key();
    const now = clock.now();
    if (key === refusedKey) return;
    if (key === savedKey && !refreshDue(now)) {
      // The file holds these inputs already: a failure was for others (a drain undone meanwhile), no longer wanted,
      // and a count left above 0 would stop etcdAnswered's refreshes for good (the file then goes stale).
      failures = 0;
      retryAtMs = 0;
      return;
    }
    saving = true;
    try {
      const state = { fleet, revision, generation, decided, ramps, history, drained: drainFlag, savedAt: now };
      const bytes = await file.save(state);
      savedKey = key;
      savedAtMs = now;
      failures = 0;
      retryAtMs = 0;
      refusedKey = undefined;
      metrics.lastStateSavesTotal.inc({ result: 'ok' });
      metrics.lastStateBytes.set(bytes);
      log.debug({ event: 'lastStateSaved', file: file.path, revision, bytes });
    } catch (err) {
      saveFailed(err, key);
    } finally {
      saving = false;
    }
  }

  return {
    enabled: file !== undefined,
    restored,
    restore,
    etcdInputArrived() {
      if (!inputs.allFromEtcd) return;
      if (inputs.leaveLastState()) {
        metrics.lastStateServing.set(0);
        metrics.lastStateAgeSeconds.set(0);
        log.info({ event: 'lastStateReplaced', revision: inputs.revision });
      }
      scheduleSave();
    },
    etcdAnswered() {
      // After a failure the backoff's timer, or new inputs, bring the next save.
      if (savedAtMs > 0 && failures === 0 && refreshDue(clock.now())) scheduleSave();
    },
    close() {
      closed = true;
      clock.clearTimeout(timer);
    },
  };
}
