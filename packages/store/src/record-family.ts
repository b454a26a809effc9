/**
 * Reads and watches of record families (the values under a prefix, each passing its decoder in record-check.ts),
 * one implementation for every concern of the store: a record that does not decode is logged (`invalidRecord`,
 * naming the key) and reported to the caller's onError; the good ones are delivered.
 */
import { escapeControls } from '@l4fleet/config';
import { type StoreError, toStoreError } from './errors.js';
import { type CachedKv, type Decode, PrefixCacheGroup, readPrefix } from './prefix-cache.js';
import { type StoreContext, tracked } from './store-context.js';
import type { Watch, WatchListener } from './types.js';

/**
 * Logs a record the store refused, naming its key and the reason. The key is logged with its control characters
 * escaped (as the message shows it): pino escapes C0 only, and a CSI (U+009B) in a hand-written key reached the log
 * raw; err.key keeps it as it is.
 */
export function warnInvalidRecord(ctx: StoreContext): (err: StoreError) => void {
  return (err) =>
    ctx.log.warn({
      event: 'invalidRecord',
      ...(err.key === undefined ? {} : { key: escapeControls(err.key) }),
      code: err.code,
      err: err.message,
    });
}

/**
 * Starts a cache group over one or more families: `build` adds them and returns what runs after each change; the
 * returned Watch closes the group (and is closed by the store's close()).
 */
export async function watchRecordGroup(
  ctx: StoreContext,
  onError: ((err: StoreError) => void) | undefined,
  build: (group: PrefixCacheGroup) => (revision: number) => void,
): Promise<Watch> {
  const warn = warnInvalidRecord(ctx);
  const group = new PrefixCacheGroup(
    ctx.ns,
    (err) => {
      warn(err);
      onError?.(err);
    },
    ctx.log,
  );
  await group.start(build(group));
  return tracked(ctx, () => group.close());
}

/**
 * A family of per-pool records written by the aggregator (decided status, table history): `toState` turns the
 * decoded records at one revision, and the keys whose value was refused, into what readers get.
 */
export interface PoolRecordFamily<T, S> {
  readonly prefix: string;
  readonly decode: Decode<T>;
  /** What the store was doing, for errors: `read decided status`. */
  readonly what: string;
  readonly toState: (
    records: ReadonlyMap<string, CachedKv<T>>,
    revision: number,
    /** Keys whose current value the store refused; in a watch, some keep their last good record in `records`. */
    refused: ReadonlySet<string>,
  ) => S;
}

export async function readPoolRecords<T, S>(ctx: StoreContext, family: PoolRecordFamily<T, S>): Promise<S> {
  try {
    const read = await readPrefix(ctx.ns, family.prefix, family.decode, warnInvalidRecord(ctx));
    return family.toState(read.entries, read.revision, read.refused);
  } catch (err) {
    throw toStoreError(err, family.what);
  }
}

/**
 * Watches a per-pool family. A record that goes bad keeps its last good value: every node must keep building from
 * the same inputs, so a hand-written key must not flip members (or move previous owners) on some nodes only.
 */
export async function watchPoolRecords<T, S>(
  ctx: StoreContext,
  family: PoolRecordFamily<T, S>,
  listener: WatchListener<S>,
): Promise<Watch> {
  return await watchRecordGroup(ctx, listener.onError?.bind(listener), (group) => {
    const records = group.add(family.prefix, family.decode, 'keep-last-good');
    return (revision) => listener.onUpdate(family.toState(records.snapshot(), revision, records.refused()));
  });
}
