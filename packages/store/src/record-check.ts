/**
 * Decoders of the small records (nodes, drain, status, health, decided, election): each checks the size, the JSON
 * shape, every field's type and bounds, and that the record agrees with its own key (a health record under
 * `health/lb1/web` must say pool `web`), and throws StoreError `INVALID_RECORD` naming the key, the field and the
 * value otherwise. Nothing read from etcd is used before it passed one of these (issue 12: a hand-written record of
 * the wrong shape must never be taken as "up" nor show as `undefined`/`NaN`).
 */
import { isIP } from 'node:net';
import { escapeControls, isRampPercent, type MemberRamp, type MemberStatus, showValue } from '@l4fleet/config';
import { invalidRecord, StoreError } from './errors.js';
import { NODE_NAME } from './layout.js';
import {
  MAX_MEMBERS_PER_RECORD,
  MAX_PEERS_PER_STATUS,
  MAX_PROBE_FAILURES_PER_STATUS,
  MAX_RECORD_BYTES,
  MAX_TEXT_CHARS,
  MAX_VIPS_PER_STATUS,
} from './limits.js';
import { BFD_SESSION_STATES, BFD_STATE_UNKNOWN, type NodeRecord, type NodeStatusReport } from './types.js';

type Raw = Record<string, unknown>;

/** Text without control characters (C0, DEL, C1): a node's version is shown in a terminal. */
const NO_CONTROL = /^\P{Cc}*$/u;

/**
 * A value for a message: JSON of its first levels and items (@l4fleet/config showValue), cut at 60 characters.
 * JSON.stringify of the whole value threw RangeError on a hand-written record nested thousands deep (JSON.parse reads
 * it): no INVALID_RECORD, no key, so the record was not reported as refused. showValue escapes every control
 * character (C0, DEL, C1) as `\uXXXX`: a record's U+009B (CSI, a terminal's ESC [) must not reach logs raw.
 */
export function shown(v: unknown): string {
  const text = v === undefined ? 'undefined' : showValue(v);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/**
 * A record's map key (a member's name, a BGP peer) as part of the field a message names, cut at 60 characters, each
 * control character as `\uXXXX`: raw, an ESC, CSI or newline in one reached logs and errors as a value's would.
 */
function keyShown(k: string): string {
  return escapeControls(k.slice(0, 60));
}

/**
 * A decoder's failure as StoreError `INVALID_RECORD` naming `key` and `field`: a StoreError as it is, anything else
 * (a RangeError of a check that recursed too deep, a TypeError) with its first line and kept as the cause. A record
 * must never fail as INTERNAL without its key: the agent counts, logs and falls back on refused records by key.
 */
export function undecodable(key: string, field: string, err: unknown): StoreError {
  if (err instanceof StoreError) return err;
  const why = err instanceof RangeError ? 'nested too deep to check' : 'cannot be checked';
  const detail = err instanceof Error ? `${err.name}: ${err.message.split('\n')[0]}` : 'not an Error';
  return invalidRecord(key, `${field}: ${why} (${detail.length > 120 ? `${detail.slice(0, 120)}...` : detail})`, err);
}

/** Parses a record's JSON object, bounded by `maxBytes`. */
export function parseRecord(key: string, value: Buffer, maxBytes = MAX_RECORD_BYTES): Raw {
  if (value.length > maxBytes) {
    throw invalidRecord(key, `value: ${value.length} bytes is more than the limit of ${maxBytes} bytes`);
  }
  let v: unknown;
  try {
    v = JSON.parse(value.toString('utf8'));
  } catch (err) {
    throw invalidRecord(key, `value: ${shown(value.toString('utf8', 0, 60))} is not JSON`, err);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw invalidRecord(key, `value: ${shown(v)} is not a JSON object`);
  }
  return v as Raw;
}

/** A string field of at most MAX_TEXT_CHARS (and matching `pattern` when given). */
export function text(key: string, rec: Raw, field: string, pattern?: RegExp): string {
  const v = rec[field];
  if (typeof v !== 'string' || v.length > MAX_TEXT_CHARS || (pattern && !pattern.test(v))) {
    throw invalidRecord(key, `${field}: ${shown(v)} is not ${pattern ? `a string matching ${pattern}` : 'a string'}`);
  }
  return v;
}

function optionalText(key: string, rec: Raw, field: string): string | undefined {
  return rec[field] === undefined ? undefined : text(key, rec, field);
}

/** An object used as a map, with at most `max` entries. */
function mapField(key: string, rec: Raw, field: string, max: number): Raw {
  const v = rec[field];
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw invalidRecord(key, `${field}: ${shown(v)} is not an object`);
  }
  const size = Object.keys(v).length;
  if (size > max) throw invalidRecord(key, `${field}: ${size} entries is more than the limit of ${max}`);
  return v as Raw;
}

function stringMap(key: string, rec: Raw, field: string, max: number): Record<string, string> {
  const m = mapField(key, rec, field, max);
  for (const [k, v] of Object.entries(m)) {
    if (k.length > MAX_TEXT_CHARS || typeof v !== 'string' || v.length > MAX_TEXT_CHARS) {
      throw invalidRecord(key, `${field}.${keyShown(k)}: ${shown(v)} is not a string`);
    }
  }
  return m as Record<string, string>;
}

/** The last segment of a key (`nodes/lb1` -> `lb1`), checked as a node name. */
export function nodeOfKey(key: string, family: string): string {
  const name = key.slice(family.length);
  if (!NODE_NAME.test(name)) throw invalidRecord(key, `key: ${shown(name)} is not a node name`);
  return name;
}

/** A health key `health/<node>/<pool>`: the node segment checked (the pool by decodePoolStatus). */
export function checkHealthKey(key: string, family: string): void {
  const rest = key.slice(family.length);
  const i = rest.indexOf('/');
  const node = i < 0 ? rest : rest.slice(0, i);
  if (i < 0 || !NODE_NAME.test(node)) throw invalidRecord(key, `key: ${shown(node)} is not a node name`);
  if (rest.indexOf('/', i + 1) >= 0) throw invalidRecord(key, `key: ${shown(rest)} is not NODE/POOL`);
}

/**
 * A per-pool key `<family><pool>` (`decided/web`, `history/web`): one segment after the family. The pool is not
 * taken from the last segment: a hand-written `decided/a/web` would be pool `web` to a watch (the put) and lose or
 * win against `decided/web` by key order on a read, so nodes would disagree about the pool's members.
 */
export function checkPoolKey(key: string, family: string): void {
  const pool = key.slice(family.length);
  if (!NODE_NAME.test(pool)) throw invalidRecord(key, `key: ${shown(pool)} is not a pool name (${family}POOL)`);
}

export function decodeNodeRecord(key: string, value: Buffer, family: string): NodeRecord {
  const node = nodeOfKey(key, family);
  const rec = parseRecord(key, value);
  const name = text(key, rec, 'name', NODE_NAME);
  if (name !== node) throw invalidRecord(key, `name: ${shown(name)} is not the key's node ${shown(node)}`);
  // `get nodes` prints both for people: the agent writes node.address (an IP address) and its package version, so
  // anything else (a newline, an escape sequence that would retitle or clear a terminal) is not the agent's.
  const address = rec.address;
  if (address !== undefined && (typeof address !== 'string' || isIP(address) === 0)) {
    throw invalidRecord(key, `address: ${shown(address)} is not an IP address`);
  }
  const version = rec.version === undefined ? undefined : text(key, rec, 'version', NO_CONTROL);
  return {
    name,
    ...(address === undefined ? {} : { address }),
    ...(version === undefined ? {} : { version }),
    registeredAt: text(key, rec, 'registeredAt'),
  };
}

/** A drain flag: `{drained: true, at}`; anything else is not a drain. */
export function decodeDrain(key: string, value: Buffer, family: string): true {
  nodeOfKey(key, family);
  const rec = parseRecord(key, value);
  if (rec.drained !== true) throw invalidRecord(key, `drained: ${shown(rec.drained)} is not true`);
  return true;
}

/**
 * A node status record. Fields unknown here are kept (a newer agent may add some during a rolling upgrade), and so is
 * a record whose bfd names a state unknown here (that peer's state reads `unknown`); the record as a whole is still
 * bounded by MAX_RECORD_BYTES.
 */
export function decodeNodeStatus(key: string, value: Buffer, family: string): NodeStatusReport {
  nodeOfKey(key, family);
  const rec = parseRecord(key, value);
  stringMap(key, rec, 'tables', MAX_VIPS_PER_STATUS);
  stringMap(key, rec, 'bgp', MAX_PEERS_PER_STATUS);
  const announced = rec.announced;
  if (
    !Array.isArray(announced) ||
    announced.length > MAX_VIPS_PER_STATUS ||
    !announced.every((a) => typeof a === 'string' && a.length <= MAX_TEXT_CHARS)
  ) {
    throw invalidRecord(key, `announced: ${shown(announced)} is not a list of at most ${MAX_VIPS_PER_STATUS} VIP keys`);
  }
  if (typeof rec.failStatic !== 'boolean') {
    throw invalidRecord(key, `failStatic: ${shown(rec.failStatic)} is not true | false`);
  }
  const rev = rec.desiredRevision;
  if (typeof rev !== 'number' || !Number.isSafeInteger(rev) || rev < 0) {
    throw invalidRecord(key, `desiredRevision: ${shown(rev)} is not a revision (an integer >= 0)`);
  }
  optionalText(key, rec, 'at');
  if (rec.bfd !== undefined) {
    // A state this version has no word for (a newer agent's, in a rolling upgrade) reads as `unknown`: refusing the
    // record would lose its tables, routes and revision, which the upgrade steps wait on (operator guide §4).
    // fromEntries defines each key as its own property: assigning into `{}` would drop a peer named `__proto__`.
    rec.bfd = Object.fromEntries(
      Object.entries(stringMap(key, rec, 'bfd', MAX_PEERS_PER_STATUS)).map(([peer, state]) => [
        peer,
        (BFD_SESSION_STATES as readonly string[]).includes(state) ? state : BFD_STATE_UNKNOWN,
      ]),
    );
  }
  if (rec.probeFailures !== undefined) {
    const failures = mapField(key, rec, 'probeFailures', MAX_PROBE_FAILURES_PER_STATUS);
    for (const [member, f] of Object.entries(failures)) {
      const at = `probeFailures.${keyShown(member)}`;
      const r = f as Raw;
      if (member.length > MAX_TEXT_CHARS || typeof f !== 'object' || f === null || Array.isArray(f)) {
        throw invalidRecord(key, `${at}: ${shown(f)} is not {reason, sinceMs}`);
      }
      if (typeof r.reason !== 'string' || r.reason.length > MAX_TEXT_CHARS) {
        throw invalidRecord(
          key,
          `${at}.reason: ${shown(r.reason)} is not a text of at most ${MAX_TEXT_CHARS} characters`,
        );
      }
      if (typeof r.sinceMs !== 'number' || !Number.isSafeInteger(r.sinceMs) || r.sinceMs < 0) {
        throw invalidRecord(key, `${at}.sinceMs: ${shown(r.sinceMs)} is not a time (ms since the epoch)`);
      }
    }
  }
  const omitted = rec.probeFailuresOmitted;
  if (omitted !== undefined && (typeof omitted !== 'number' || !Number.isSafeInteger(omitted) || omitted < 1)) {
    throw invalidRecord(key, `probeFailuresOmitted: ${shown(omitted)} is not a count (an integer >= 1)`);
  }
  return rec as unknown as NodeStatusReport;
}

export interface PoolStatusRecord {
  readonly pool: string;
  readonly members: Readonly<Record<string, MemberStatus>>;
  /**
   * Decided records only: the members in slow start (@l4fleet/config slow-start.ts); none is `down` in `members`.
   * Absent when none ramps, so records without ramps are what nodes that predate slow start read.
   */
  readonly ramp?: Readonly<Record<string, MemberRamp>>;
}

/** A health or decided record of one pool; `pool` must be the key's last segment. */
export function decodePoolStatus(key: string, value: Buffer): PoolStatusRecord {
  const rec = parseRecord(key, value);
  const pool = text(key, rec, 'pool', NODE_NAME);
  const keyPool = key.slice(key.lastIndexOf('/') + 1);
  if (pool !== keyPool) throw invalidRecord(key, `pool: ${shown(pool)} is not the key's pool ${shown(keyPool)}`);
  const members = mapField(key, rec, 'members', MAX_MEMBERS_PER_RECORD);
  for (const [m, s] of Object.entries(members)) {
    if (m.length === 0 || m.length > MAX_TEXT_CHARS) throw invalidRecord(key, `members: ${shown(m)} is not a member`);
    if (s !== 'up' && s !== 'down') throw invalidRecord(key, `members.${keyShown(m)}: ${shown(s)} is not up | down`);
  }
  if (rec.ramp === undefined) return { pool, members: members as Record<string, MemberStatus> };
  const ramp: Record<string, MemberRamp> = {};
  for (const [m, r] of Object.entries(mapField(key, rec, 'ramp', MAX_MEMBERS_PER_RECORD))) {
    ramp[m] = decodeMemberRamp(key, `ramp.${keyShown(m)}`, r, members[m]);
  }
  return { pool, members: members as Record<string, MemberStatus>, ramp };
}

/**
 * One member's ramp: `{percent: 1-99, sinceMs}`, of a member whose decided `status` is not `down`; `key` and `at`
 * name the record and the field in the error (also used for the agent's state file).
 */
export function decodeMemberRamp(key: string, at: string, r: unknown, status: unknown): MemberRamp {
  if (typeof r !== 'object' || r === null || Array.isArray(r)) {
    throw invalidRecord(key, `${at}: ${shown(r)} is not {percent, sinceMs}`);
  }
  const { percent, sinceMs } = r as Raw;
  if (!isRampPercent(percent)) throw invalidRecord(key, `${at}.percent: ${shown(percent)} is not a percent (1-99)`);
  if (typeof sinceMs !== 'number' || !Number.isSafeInteger(sinceMs) || sinceMs < 0) {
    throw invalidRecord(key, `${at}.sinceMs: ${shown(sinceMs)} is not a time (ms since the epoch)`);
  }
  if (status === 'down') throw invalidRecord(key, `${at}: the member is decided "down": it cannot ramp`);
  return { percent, sinceMs };
}

/** An election key's value: the campaigning node's name. */
export function decodeCandidate(key: string, value: Buffer): string {
  if (value.length > MAX_TEXT_CHARS) {
    throw invalidRecord(key, `value: ${value.length} bytes is more than the limit of ${MAX_TEXT_CHARS} bytes`);
  }
  const name = value.toString('utf8');
  if (!NODE_NAME.test(name)) throw invalidRecord(key, `value: ${shown(name)} is not a node name`);
  return name;
}
