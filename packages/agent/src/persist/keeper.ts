/**
 * The last good inputs on disk (0006 "Last good state on disk"): restores them when the agent starts without
 * etcd, and saves what etcd delivered (batched, one write in flight, refreshed hourly so the file's age means
 * "last confirmed against etcd"). Without a state file store every call is a no-op.
 */
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import type { AgentError } from '../errors.js';
import { type AgentMetrics, recordDecided } from '../observe/metrics.js';
import type { ServedInputs } from '../serve/inputs.js';
import type { LastState, LastStateStore } from './last-state.js';

/** State file writes are batched this long, ms (a burst of decisions is one write). */
export const STATE_SAVE_DELAY_MS = 1_000;
/** An unchanged state file is rewritten this often while etcd answers, so its age says "confirmed recently", ms. */
export const STATE_REFRESH_MS = 3_600_000;

export interface LastStateKeeperOptions {
  /** undefined: nothing is saved or restored. */
  readonly file: LastStateStore | undefined;
  readonly inputs: ServedInputs;
  readonly clock: Clock;
  readonly metrics: AgentMetrics;
  readonly logger: Logger;
  /** Whether a restored file may still be served (the node is starting and etcd has not delivered a fleet). */
  readonly mayRestore: () => boolean;
  /** The file's inputs are now the served inputs. */
  readonly onRestored: () => void;
}

export interface LastStateKeeper {
  readonly enabled: boolean;
  /** Resolves once inputs were restored from the file (never, if they were not). */
  readonly restored: Promise<void>;
  /** Loads the file once and serves it if it is valid and etcd has not answered meanwhile. */
  restore(why: string): Promise<void>;
  /** After each input etcd delivered: once all three came from etcd, the file is replaced and saving resumes. */
  etcdInputArrived(): void;
  /** etcd answered: rewrite an unchanged file once it is STATE_REFRESH_MS old. */
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
  /**
   * The saved file is STATE_REFRESH_MS old, or the clock stepped back past its savedAt: rewrite it. A negative age is
   * no young file: the loader refuses savedAt in the future (STATE_FUTURE_TOLERANCE_MS), and waiting for the clock to
   * catch up would leave it refused that long.
   */
  const refreshDue = (now: number): boolean => now - savedAtMs >= STATE_REFRESH_MS || now < savedAtMs;
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
    inputs.restore(s);
    const ageS = Math.max(0, Math.round((clock.now() - s.savedAt) / 1000));
    metrics.lastStateServing.set(1);
    metrics.lastStateAgeSeconds.set(ageS);
    recordDecided(metrics, s.decided, s.ramps ?? new Map());
    log.warn({
      event: 'lastStateRestored',
      file: file.path,
      revision: s.revision,
      savedAt: new Date(s.savedAt).toISOString(),
      ageS,
      vips: s.fleet.vips.length,
      drained: s.drained,
      reason: why,
    });
    opts.onRestored();
    onRestored();
  }

  function scheduleSave(): void {
    if (!file || timer !== undefined || closed) return;
    timer = clock.setTimeout(() => {
      timer = undefined;
      void save();
    }, STATE_SAVE_DELAY_MS);
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
    if (key === savedKey && !refreshDue(now)) return;
    saving = true;
    try {
      const state = { fleet, revision, generation, decided, ramps, history, drained: drainFlag, savedAt: now };
      const bytes = await file.save(state);
      savedKey = key;
      savedAtMs = now;
      metrics.lastStateSavesTotal.inc({ result: 'ok' });
      metrics.lastStateBytes.set(bytes);
      log.debug({ event: 'lastStateSaved', file: file.path, revision, bytes });
    } catch (err) {
      metrics.lastStateSavesTotal.inc({ result: 'error' });
      log.warn({ event: 'lastStateSaveFailed', file: file.path, err: (err as Error).message });
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
      if (savedAtMs > 0 && refreshDue(clock.now())) scheduleSave();
    },
    close() {
      closed = true;
      clock.clearTimeout(timer);
    },
  };
}
