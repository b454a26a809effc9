/**
 * The agent's last good inputs on disk: the desired fleet with its etcd revision, the decided member status and
 * slow-start ramps, the
 * table history (second chance, 0011) and this node's drain flag (everything planTables/plannedRoutes need). An agent that restarts while etcd is
 * unreachable serves them in fail-static instead of waiting for etcd (issue 6; docs/design/0006).
 *
 * Format: a header line (JSON: kind, schema, identity, savedAt, sha256 and length of the body), then the body (JSON).
 * The fleet is kept exactly as the store keeps it in etcd (pointer + chunks from encodeDocument, gzip above
 * 128 KiB) and read back with the store's own decodePointer/decodeDocument, so a file passes the same validation
 * (parseFleet, seed check, chunk sha256) as state read from etcd. Written atomically: temp file, fsync, rename,
 * fsync of the directory, so a crash leaves the old file or the new one, never half of one.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import {
  type Fleet,
  type MemberRamp,
  type MemberRamps,
  type MemberStatus,
  type PoolHistory,
  showValue,
  type TableHistory,
} from '@l4fleet/config';
import {
  decodeDocument,
  decodeMemberRamp,
  decodePointer,
  decodePoolHistory,
  encodeDocument,
  encodePoolHistory,
  StoreError,
} from '@l4fleet/store';
import { AgentError } from '../errors.js';

export const STATE_FILE_KIND = 'l4fleet-agent-state';
export const STATE_FILE_SCHEMA = 1;
/**
 * How far savedAt may lie ahead of now, ms (5 min): a clock stepped back a little (NTP) still reads the file. Past
 * it the age says nothing (negative, state.maxAgeS would never apply), so the file is stale.
 */
export const STATE_FUTURE_TOLERANCE_MS = 5 * 60_000;

/**
 * The cause of a STATE_SAVE_FAILED that the same inputs would meet again (the file would be over state.maxBytes, or
 * the fleet has no hashSeed): saving them again cannot help, new inputs may.
 */
export class StateNotSavableError extends Error {
  override readonly name = 'StateNotSavableError';
}

/** Whether `err` is a STATE_SAVE_FAILED that retrying the same inputs cannot cure (StateNotSavableError). */
export function isStateNotSavable(err: unknown): boolean {
  return err instanceof AgentError && err.code === 'STATE_SAVE_FAILED' && err.cause instanceof StateNotSavableError;
}

/** AgentError STATE_SAVE_FAILED for inputs that cannot be saved as they are. */
const notSavable = (msg: string): AgentError =>
  new AgentError('STATE_SAVE_FAILED', msg, { cause: new StateNotSavableError(msg) });

/** The inputs a node builds its tables and routes from. */
export interface LastState {
  readonly fleet: Fleet;
  /** etcd revision of the desired state. */
  readonly revision: number;
  /** Generation id of the stored document. */
  readonly generation: string;
  /** Member key (`pool/member`) -> decided status. */
  readonly decided: ReadonlyMap<string, MemberStatus>;
  /** Member key -> its slow-start step (absent in files of earlier versions: none). */
  readonly ramps?: MemberRamps;
  /** The table history by pool (absent in files of earlier versions: no previous owners). */
  readonly history?: TableHistory;
  /** The operator's drain flag for this node. */
  readonly drained: boolean;
  /** When these inputs were last confirmed against etcd, ms since the epoch. */
  readonly savedAt: number;
}

/** Whose state a file holds: a file of another node, fleet or etcd prefix is stale. */
export interface StateIdentity {
  readonly node: string;
  readonly fleet: string;
  readonly etcdPrefix: string;
}

export interface LastStateStore {
  readonly path: string;
  /** undefined when there is no file; AgentError STATE_INVALID or STATE_STALE when it must not be used. */
  load(): Promise<LastState | undefined>;
  /**
   * Replaces the file atomically; resolves with the bytes written; AgentError STATE_SAVE_FAILED (with a
   * StateNotSavableError cause when the inputs themselves cannot be saved: isStateNotSavable).
   */
  save(state: LastState): Promise<number>;
}

export interface LastStateFileOptions {
  readonly dir: string;
  readonly identity: StateIdentity;
  /** Largest file written or read, bytes. */
  readonly maxBytes: number;
  /** Older than this (since savedAt) is stale, s; 0 = never stale. */
  readonly maxAgeS: number;
  readonly now?: () => number;
}

interface Header {
  kind: string;
  schema: number;
  node: string;
  fleet: string;
  etcdPrefix: string;
  savedAt: string;
  bytes: number;
  sha256: string;
}

interface Body {
  revision: number;
  generation: string;
  drained: boolean;
  decided: Record<string, MemberStatus>;
  /** Member key -> its ramp; written only when a member ramps. */
  ramps?: Record<string, MemberRamp>;
  /** Pool -> its `history/<pool>` record as etcd would hold it (checked with the store's decoder on load). */
  history?: Record<string, string>;
  /** The pointer value as etcd would hold it. */
  pointer: string;
  /** Chunks, base64. */
  chunks: string[];
}

/** `<fleet>.<node>.state.json`: fleet and node names are file-name safe (subject token, NODE_NAME). */
export function stateFileName(identity: StateIdentity): string {
  return `${identity.fleet}.${identity.node}.state.json`;
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Pool -> the record as etcd holds it, pools sorted (the same history, the same bytes). */
function historyRecords(history: TableHistory): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pool of [...history.keys()].sort()) out[pool] = encodePoolHistory(history.get(pool) as PoolHistory);
  return out;
}

export function encodeLastState(s: LastState, identity: StateIdentity): Buffer {
  const seed = s.fleet.hashSeed;
  if (seed === undefined) {
    throw notSavable(`state: fleet of revision ${s.revision} has no hashSeed`);
  }
  const doc = encodeDocument({ ...s.fleet, hashSeed: seed }, s.generation || 'state', new Date(s.savedAt));
  const decided: Record<string, MemberStatus> = {};
  for (const k of [...s.decided.keys()].sort()) decided[k] = s.decided.get(k) as MemberStatus;
  const ramps: Record<string, MemberRamp> = {};
  for (const k of [...(s.ramps?.keys() ?? [])].sort()) ramps[k] = s.ramps?.get(k) as MemberRamp;
  const body = Buffer.from(
    JSON.stringify({
      revision: s.revision,
      generation: s.generation,
      drained: s.drained,
      decided,
      ...(Object.keys(ramps).length === 0 ? {} : { ramps }),
      ...(s.history === undefined ? {} : { history: historyRecords(s.history) }),
      pointer: JSON.stringify(doc.pointer),
      chunks: doc.chunks.map((c) => c.toString('base64')),
    } satisfies Body),
  );
  const header: Header = {
    kind: STATE_FILE_KIND,
    schema: STATE_FILE_SCHEMA,
    ...identity,
    savedAt: new Date(s.savedAt).toISOString(),
    bytes: body.length,
    sha256: sha256(body),
  };
  return Buffer.concat([Buffer.from(`${JSON.stringify(header)}\n`), body]);
}

const invalid = (file: string, msg: string, cause?: unknown) =>
  new AgentError('STATE_INVALID', `${file}: ${msg}`, cause === undefined ? undefined : { cause });
/**
 * A value for a message, of bounded length and depth (@l4fleet/config showValue, as the store's record checks):
 * JSON.stringify of a value nested thousands deep threw RangeError, which reached lastStateIgnored with no code and
 * no field.
 */
const show = (v: unknown): string => (v === undefined ? 'undefined' : showValue(v));

/** Validates a state file; `file` names it in every message. */
export function decodeLastState(
  file: string,
  data: Buffer,
  identity: StateIdentity,
  opts: { nowMs: number; maxAgeMs: number },
): LastState {
  const nl = data.indexOf(0x0a);
  if (nl < 0) throw invalid(file, 'no header line');
  let h: Partial<Header>;
  try {
    h = JSON.parse(data.subarray(0, nl).toString('utf8')) as Partial<Header>;
  } catch (err) {
    throw invalid(file, 'header is not JSON', err);
  }
  if (h?.kind !== STATE_FILE_KIND) throw invalid(file, `kind ${show(h?.kind)} is not ${STATE_FILE_KIND}`);
  if (h.schema !== STATE_FILE_SCHEMA) throw invalid(file, `schema ${show(h.schema)} is not ${STATE_FILE_SCHEMA}`);
  const body = data.subarray(nl + 1);
  if (h.bytes !== body.length) throw invalid(file, `body is ${body.length} bytes, header says ${show(h.bytes)}`);
  const sum = sha256(body);
  if (h.sha256 !== sum) throw invalid(file, `body sha256 ${sum} is not ${show(h.sha256)}`);
  for (const k of ['node', 'fleet', 'etcdPrefix'] as const) {
    if (h[k] !== identity[k]) {
      throw new AgentError('STATE_STALE', `${file}: ${k} ${show(h[k])} is not this agent's ${show(identity[k])}`);
    }
  }
  const savedAt = Date.parse(String(h.savedAt));
  if (!Number.isFinite(savedAt)) throw invalid(file, `savedAt ${show(h.savedAt)} is not a time`);
  const ageMs = opts.nowMs - savedAt;
  if (-ageMs > STATE_FUTURE_TOLERANCE_MS) {
    throw new AgentError(
      'STATE_STALE',
      `${file}: saved in the future: ${h.savedAt} is ${Math.round(-ageMs / 1000)} s after now ` +
        `(over ${STATE_FUTURE_TOLERANCE_MS / 1000} s: the clock moved back?)`,
    );
  }
  if (opts.maxAgeMs > 0 && ageMs > opts.maxAgeMs) {
    throw new AgentError(
      'STATE_STALE',
      `${file}: saved ${Math.round(ageMs / 1000)} s ago (${h.savedAt}), older than state.maxAgeS ${opts.maxAgeMs / 1000}`,
    );
  }
  let b: Partial<Body>;
  try {
    b = JSON.parse(body.toString('utf8')) as Partial<Body>;
  } catch (err) {
    throw invalid(file, 'body is not JSON', err);
  }
  if (typeof b !== 'object' || b === null || Array.isArray(b)) {
    // Named by kind, not shown: a list body may be megabytes.
    throw invalid(file, `body is ${b === null ? 'null' : Array.isArray(b) ? 'a list' : typeof b}, not an object`);
  }
  if (!Number.isInteger(b.revision) || (b.revision as number) < 1) {
    throw invalid(file, `revision ${show(b.revision)} is not a revision (>= 1)`);
  }
  if (typeof b.generation !== 'string') throw invalid(file, `generation ${show(b.generation)} is not a string`);
  if (typeof b.drained !== 'boolean') throw invalid(file, `drained ${show(b.drained)} is not true or false`);
  if (typeof b.pointer !== 'string') throw invalid(file, 'pointer is missing');
  if (!Array.isArray(b.chunks) || b.chunks.some((c) => typeof c !== 'string')) {
    throw invalid(file, 'chunks is not a list of base64 strings');
  }
  if (typeof b.decided !== 'object' || b.decided === null || Array.isArray(b.decided)) {
    throw invalid(file, 'decided is not an object');
  }
  const decided = new Map<string, MemberStatus>();
  for (const [k, v] of Object.entries(b.decided)) {
    // The store's member-key rule: the first `/` splits pool and member, neither empty.
    const i = k.indexOf('/');
    if (i <= 0 || i === k.length - 1) throw invalid(file, `decided key ${show(k)} is not POOL/MEMBER`);
    if (v !== 'up' && v !== 'down') throw invalid(file, `decided.${k}: ${show(v)} is not up | down`);
    decided.set(k, v);
  }
  if (b.ramps !== undefined && (typeof b.ramps !== 'object' || b.ramps === null || Array.isArray(b.ramps))) {
    throw invalid(file, 'ramps is not an object');
  }
  const ramps = new Map<string, MemberRamp>();
  if (b.history !== undefined && (typeof b.history !== 'object' || b.history === null || Array.isArray(b.history))) {
    throw invalid(file, 'history is not an object');
  }
  const history = new Map<string, PoolHistory>();
  let fleet: Fleet;
  try {
    for (const [k, r] of Object.entries(b.ramps ?? {})) {
      const i = k.indexOf('/');
      if (i <= 0 || i === k.length - 1) throw invalid(file, `ramps key ${show(k)} is not POOL/MEMBER`);
      ramps.set(k, decodeMemberRamp(file, `ramps.${k}`, r, decided.get(k)));
    }
    for (const [pool, value] of Object.entries(b.history ?? {})) {
      if (typeof value !== 'string') throw invalid(file, `history.${pool}: ${show(value)} is not a record`);
      history.set(pool, decodePoolHistory(`${file}: history/${pool}`, Buffer.from(value, 'utf8')));
    }
    const key = `${file}: pointer`;
    const pointer = decodePointer(key, Buffer.from(b.pointer, 'utf8'));
    fleet = decodeDocument(
      key,
      pointer,
      b.chunks.map((c) => Buffer.from(c, 'base64')),
    );
  } catch (err) {
    if (err instanceof AgentError) throw err;
    if (err instanceof StoreError) throw new AgentError('STATE_INVALID', err.message, { cause: err });
    // Whatever else a check throws (a RangeError of one that recursed too deep) is still a file that does not read.
    const detail = err instanceof Error ? `${err.name}: ${err.message.split('\n')[0]?.slice(0, 120)}` : 'not an Error';
    throw invalid(file, `body cannot be checked (${detail})`, err);
  }
  const revision = b.revision as number;
  return {
    fleet,
    revision,
    generation: b.generation,
    decided,
    ...(ramps.size === 0 ? {} : { ramps }),
    ...(b.history === undefined ? {} : { history }),
    drained: b.drained,
    savedAt,
  };
}

/** What follows `<state file name>.` in a temp file a save writes (`.<pid>.<8 hex>.tmp`). */
const TEMP_SUFFIX = /^\d+\.[0-9a-f]{8}\.tmp$/;

/** The state file in `dir`; the directory is created on the first save. */
export function createLastStateFile(opts: LastStateFileOptions): LastStateStore {
  const name = stateFileName(opts.identity);
  const path = join(opts.dir, name);
  const now = opts.now ?? Date.now;
  const writing = new Set<string>();
  let swept = false;
  /**
   * Removes, once, the temp files of saves a crash cut short (up to maxBytes each; nothing else would ever remove
   * them). Only this node's file name: another agent may share the directory. Best effort: a save does not fail
   * for a temp file it could not remove.
   */
  const sweepTemps = async (): Promise<void> => {
    if (swept) return;
    swept = true;
    const names = await readdir(opts.dir).catch((): string[] => []);
    for (const n of names) {
      if (!n.startsWith(`${name}.`) || !TEMP_SUFFIX.test(n.slice(name.length + 1)) || writing.has(n)) continue;
      await rm(join(opts.dir, n), { force: true }).catch(() => undefined);
    }
  };
  return {
    path,
    async load() {
      let size: number;
      try {
        size = (await stat(path)).size;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw invalid(path, `cannot stat: ${(err as Error).message}`, err);
      }
      if (size > opts.maxBytes) throw invalid(path, `${size} bytes is over state.maxBytes ${opts.maxBytes}`);
      let data: Buffer;
      try {
        data = await readFile(path);
      } catch (err) {
        throw invalid(path, `cannot read: ${(err as Error).message}`, err);
      }
      return decodeLastState(path, data, opts.identity, { nowMs: now(), maxAgeMs: opts.maxAgeS * 1000 });
    },
    async save(state) {
      const data = encodeLastState(state, opts.identity);
      if (data.length > opts.maxBytes) {
        throw notSavable(`${path}: ${data.length} bytes is over state.maxBytes ${opts.maxBytes}; not written`);
      }
      const tmpName = `${name}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
      const tmp = join(opts.dir, tmpName);
      writing.add(tmpName);
      try {
        await mkdir(opts.dir, { recursive: true, mode: 0o750 });
        await sweepTemps();
        const fh = await open(tmp, 'w', 0o640);
        try {
          await fh.writeFile(data);
          await fh.sync();
        } finally {
          await fh.close();
        }
        await rename(tmp, path);
        // fsync the directory so the rename itself survives a power loss.
        const dh = await open(opts.dir, 'r');
        try {
          await dh.sync();
        } finally {
          await dh.close();
        }
      } catch (err) {
        await rm(tmp, { force: true }).catch(() => undefined);
        throw new AgentError('STATE_SAVE_FAILED', `${path}: ${(err as Error).message}`, { cause: err });
      } finally {
        writing.delete(tmpName);
      }
      return data.length;
    },
  };
}
