/**
 * ResumableWatch over a fake namespace whose watchers are driven by hand: what an etcd outage costs in log lines and
 * onError calls. Resume revisions, compaction and close against etcd: watch-close.int.test.ts, etcd-store.int.test.ts.
 */
import { EventEmitter } from 'node:events';
import type { Namespace } from 'etcd3';
import type { Logger } from 'pino';
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import type { StoreError } from './errors.js';
import { ResumableWatch } from './watch.js';

/** Watchers handed out by watch()...watcher(), newest last; each records the start revision it was asked for. */
function fakeNamespace() {
  const watchers: (EventEmitter & { startRevision: string; cancel(): Promise<void> })[] = [];
  const watch = () => {
    let startRevision = '0';
    const b = {
      prefix: () => b,
      key: () => b,
      startRevision: (r: string) => {
        startRevision = r;
        return b;
      },
      watcher: () => {
        const w = Object.assign(new EventEmitter(), { startRevision, cancel: async () => undefined });
        watchers.push(w);
        return w;
      },
    };
    return b;
  };
  // The range read a server cancel is checked with (restartAfterCancel): the revision is there, not compacted.
  const get = () => ({ revision: () => ({ exec: async () => ({ kvs: [] }) }) });
  return { ns: { watch, get } as unknown as Namespace, watchers, current: () => watchers[watchers.length - 1] };
}

/** A logger recording the level and event of each line. */
function recordingLogger() {
  const lines: { level: string; event: string; code?: string }[] = [];
  const at = (level: string) => (o: { event: string; code?: string }) => {
    lines.push({ level, event: o.event, ...(o.code ? { code: o.code } : {}) });
  };
  const log = { warn: at('warn'), info: at('info'), debug: at('debug'), error: at('error') } as unknown as Logger;
  return { log, lines, warned: () => lines.filter((l) => l.level === 'warn') };
}

/** etcd3's error for a stream that cannot connect (grpc-js "No connection established"): UNAVAILABLE. */
const unavailable = () => new Error('14 UNAVAILABLE: No connection established');

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('store watch - an etcd outage', () => {
  // Every watch of the agent, the aggregator and the dashboard warned and called onError on each retry (every 2 s at
  // most), and each caller warned again: lines per second per node for the whole outage.
  test('10 minutes of disconnects every 2 s: one warning and one onError; repeats at debug', async () => {
    const { ns, current, watchers } = fakeNamespace();
    const { log, lines, warned } = recordingLogger();
    const errors: StoreError[] = [];
    const w = new ResumableWatch(
      ns,
      { prefix: 'nodes/' },
      5,
      { onEvents: () => undefined, resync: async () => 5, onError: (e) => errors.push(e) },
      log,
    );
    w.start();
    for (let i = 0; i < 300; i++) {
      current()?.emit('disconnected', unavailable());
      await vi.advanceTimersByTimeAsync(2_000);
    }
    expect(watchers.length).toBe(301); // it kept retrying
    expect(errors.map((e) => e.code)).toEqual(['UNAVAILABLE']);
    expect(warned()).toEqual([{ level: 'warn', event: 'watchDisconnected', code: 'UNAVAILABLE' }]);
    expect(lines.filter((l) => l.event === 'watchDisconnected' && l.level === 'debug').length).toBe(299);
    await w.close();
  });

  test('after a recovery (etcd acknowledged the watch) the next disconnect is reported again', async () => {
    const { ns, current } = fakeNamespace();
    const { log, lines, warned } = recordingLogger();
    const errors: StoreError[] = [];
    const w = new ResumableWatch(
      ns,
      { prefix: 'nodes/' },
      5,
      { onEvents: () => undefined, resync: async () => 5, onError: (e) => errors.push(e) },
      log,
    );
    w.start();
    for (let i = 0; i < 3; i++) {
      current()?.emit('disconnected', unavailable());
      await vi.advanceTimersByTimeAsync(2_000);
    }
    // A quiet prefix gets no data after a reconnect: the create response is what says the watch is live again.
    current()?.emit('connected', {});
    expect(lines.filter((l) => l.event === 'watchReconnected')).toEqual([{ level: 'info', event: 'watchReconnected' }]);
    current()?.emit('disconnected', unavailable());
    await vi.advanceTimersByTimeAsync(2_000);
    expect(errors.map((e) => e.code)).toEqual(['UNAVAILABLE', 'UNAVAILABLE']);
    expect(warned().length).toBe(2);
    await w.close();
  });

  test('a failure of another kind during the outage is reported', async () => {
    const { ns, current } = fakeNamespace();
    const { log } = recordingLogger();
    const errors: StoreError[] = [];
    const w = new ResumableWatch(
      ns,
      { prefix: 'nodes/' },
      5,
      { onEvents: () => undefined, resync: async () => 5, onError: (e) => errors.push(e) },
      log,
    );
    w.start();
    current()?.emit('disconnected', unavailable());
    await vi.advanceTimersByTimeAsync(2_000);
    current()?.emit('disconnected', new Error('Permission denied'));
    await vi.advanceTimersByTimeAsync(2_000);
    current()?.emit('disconnected', new Error('Permission denied'));
    await vi.advanceTimersByTimeAsync(2_000);
    expect(errors.map((e) => e.code)).toEqual(['UNAVAILABLE', 'INTERNAL']);
    await w.close();
  });

  // A compacted resume revision while etcd is down: the resync failed and was retried, each failure an onError.
  test('a resync failing for the whole outage: the compaction and the first failure reported, not each retry', async () => {
    const { ns, current, watchers } = fakeNamespace();
    const { log, warned } = recordingLogger();
    const errors: StoreError[] = [];
    let resyncs = 0;
    const resync = async () => {
      resyncs += 1;
      throw unavailable();
    };
    const w = new ResumableWatch(
      ns,
      { prefix: 'nodes/' },
      5,
      { onEvents: () => undefined, resync, onError: (e) => errors.push(e) },
      log,
    );
    w.start();
    current()?.emit('error', new Error('etcdserver: mvcc: required revision has been compacted'));
    await vi.advanceTimersByTimeAsync(10 * 60_000);
    expect(resyncs).toBeGreaterThan(250);
    expect(watchers.length).toBe(1);
    expect(errors.map((e) => e.code)).toEqual(['COMPACTED', 'UNAVAILABLE']);
    expect(warned().length).toBe(1);
    await w.close();
  });
});

/** A watch response of one put at `rev`. */
const putAt = (rev: number) => ({
  header: { revision: String(rev) },
  events: [
    {
      type: 'Put',
      kv: { key: Buffer.from('nodes/a'), value: Buffer.from('{}'), mod_revision: String(rev), create_revision: '1' },
    },
  ],
});

/** Unhandled rejections while `fn` runs, the event loop turned (really) once after it. */
async function unhandledDuring(fn: () => Promise<void>): Promise<unknown[]> {
  const seen: unknown[] = [];
  const listener = (reason: unknown) => seen.push(reason);
  process.on('unhandledRejection', listener);
  try {
    await fn();
    vi.useRealTimers();
    await new Promise((resolve) => setTimeout(resolve, 0));
  } finally {
    process.off('unhandledRejection', listener);
  }
  return seen;
}

// A throwing onError left the handler chain rejected: every later batch was skipped (the watch went on advancing its
// revision, so they were lost), and the rejection was unhandled, which ends a Node 20 process.
describe('store watch - a handler that throws', () => {
  test('onEvents and then onError throw: logged, the next batch is still delivered, no unhandled rejection', async () => {
    const { ns, current } = fakeNamespace();
    const { log, lines } = recordingLogger();
    const delivered: number[] = [];
    let w: ResumableWatch | undefined;
    const unhandled = await unhandledDuring(async () => {
      w = new ResumableWatch(
        ns,
        { prefix: 'nodes/' },
        5,
        {
          onEvents: (events) => {
            const rev = events[0]?.modRevision ?? 0;
            if (rev === 6) throw new Error('handler bug');
            delivered.push(rev);
          },
          resync: async () => 5,
          onError: () => {
            throw new Error('onError bug');
          },
        },
        log,
      );
      w.start();
      current()?.emit('data', putAt(6));
      await vi.advanceTimersByTimeAsync(10);
      current()?.emit('data', putAt(7));
      await vi.advanceTimersByTimeAsync(10);
    });
    expect(unhandled).toEqual([]);
    expect(delivered).toEqual([7]);
    expect(lines.filter((l) => l.event === 'watchHandlerFailed').map((l) => l.level)).toEqual(['error']);
    await w?.close();
  });

  test('onError throws on a server cancel: logged, the watch restarts, no unhandled rejection', async () => {
    const { ns, current, watchers } = fakeNamespace();
    const { log, lines } = recordingLogger();
    let w: ResumableWatch | undefined;
    const unhandled = await unhandledDuring(async () => {
      w = new ResumableWatch(
        ns,
        { prefix: 'nodes/' },
        5,
        {
          onEvents: () => undefined,
          resync: async () => 5,
          onError: () => {
            throw new Error('onError bug');
          },
        },
        log,
      );
      w.start();
      current()?.emit('error', new Error('Watcher canceled: '));
      await vi.advanceTimersByTimeAsync(2_000);
    });
    expect(unhandled).toEqual([]);
    expect(watchers.length).toBe(2);
    expect(lines.some((l) => l.event === 'watchHandlerFailed')).toBe(true);
    await w?.close();
  });

  test('onError throws on a disconnect or an error event: contained, the watch restarts', async () => {
    const { ns, current, watchers } = fakeNamespace();
    const { log } = recordingLogger();
    const w = new ResumableWatch(
      ns,
      { prefix: 'nodes/' },
      5,
      {
        onEvents: () => undefined,
        resync: async () => 5,
        onError: () => {
          throw new Error('onError bug');
        },
      },
      log,
    );
    w.start();
    expect(() => current()?.emit('disconnected', unavailable())).not.toThrow();
    await vi.advanceTimersByTimeAsync(2_000);
    expect(() => current()?.emit('error', new Error('Permission denied'))).not.toThrow();
    await vi.advanceTimersByTimeAsync(2_000);
    expect(watchers.length).toBe(3);
    await w.close();
  });
});
