/**
 * The table history record of one pool, `history/<pool>` (second chance, docs/design/0011-second-chance.md and
 * 0002-etcd-layout.md): the inputs of the pool's current table and of its earlier tables, written by the elected
 * aggregator. Members are stored as `[name, address, port, weight]` rows, index-space order (sorted by name).
 * The decoder checks it like every other record (record-check.ts): shape, bounds, each field's type and range, the
 * pool against the key, names unique and sorted; a failure is StoreError `INVALID_RECORD` naming key, field, value.
 */
import {
  canonicalAddress,
  type EarlierPoolTable,
  type HistoryMember,
  MAX_MEMBER_WEIGHT,
  MAX_PREVIOUS_TABLES,
  type PoolHistory,
} from '@l4fleet/config';
import { invalidRecord } from './errors.js';
import { NODE_NAME } from './layout.js';
import { MAX_MEMBERS_PER_RECORD, MAX_RECORD_BYTES, MAX_TEXT_CHARS } from './limits.js';
import { parseRecord, shown, text } from './record-check.js';

/** Earlier tables in one history record: config's MAX_PREVIOUS_TABLES (4). */
export const MAX_TABLES_PER_HISTORY = MAX_PREVIOUS_TABLES;

type Row = [string, string, number, number];

const rowOf = (m: HistoryMember): Row => [m.name, m.address, m.port, m.weight];

export function encodePoolHistory(h: PoolHistory): string {
  return JSON.stringify({
    pool: h.pool,
    current: h.current.map(rowOf),
    earlier: h.earlier.map((t) => ({ untilMs: t.untilMs, members: t.members.map(rowOf) })),
  });
}

function members(key: string, field: string, v: unknown): HistoryMember[] {
  if (!Array.isArray(v)) throw invalidRecord(key, `${field}: ${shown(v)} is not a list of members`);
  if (v.length > MAX_MEMBERS_PER_RECORD) {
    throw invalidRecord(key, `${field}: ${v.length} members is more than the limit of ${MAX_MEMBERS_PER_RECORD}`);
  }
  const out: HistoryMember[] = [];
  let last: string | undefined;
  v.forEach((row: unknown, i) => {
    const at = `${field}[${i}]`;
    if (!Array.isArray(row) || row.length !== 4) {
      throw invalidRecord(key, `${at}: ${shown(row)} is not [name, address, port, weight]`);
    }
    const [name, address, port, weight] = row as unknown[];
    if (typeof name !== 'string' || name.length === 0 || name.length > MAX_TEXT_CHARS) {
      throw invalidRecord(key, `${at}.name: ${shown(name)} is not a member name`);
    }
    if (last !== undefined && !(last < name)) {
      throw invalidRecord(key, `${at}.name: ${shown(name)} is not after ${shown(last)} (sorted, unique)`);
    }
    last = name;
    let canonical = false;
    try {
      canonical = typeof address === 'string' && canonicalAddress(address).address === address;
    } catch {
      // reported below
    }
    if (!canonical) throw invalidRecord(key, `${at}.address: ${shown(address)} is not a canonical IP address`);
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65_535) {
      throw invalidRecord(key, `${at}.port: ${shown(port)} is not a port (1-65535)`);
    }
    // Not only integers: a member in slow start has a part of its weight (@l4fleet/config slow-start.ts).
    if (typeof weight !== 'number' || !Number.isFinite(weight) || weight < 0 || weight > MAX_MEMBER_WEIGHT) {
      throw invalidRecord(key, `${at}.weight: ${shown(weight)} is not a weight (0-${MAX_MEMBER_WEIGHT})`);
    }
    out.push({ name, address: address as string, port, weight });
  });
  return out;
}

/** Decodes `history/<pool>`; throws StoreError INVALID_RECORD naming the key, the field and the value. */
export function decodePoolHistory(key: string, value: Buffer): PoolHistory {
  const rec = parseRecord(key, value, MAX_RECORD_BYTES);
  const pool = text(key, rec, 'pool', NODE_NAME);
  const keyPool = key.slice(key.lastIndexOf('/') + 1);
  if (pool !== keyPool) throw invalidRecord(key, `pool: ${shown(pool)} is not the key's pool ${shown(keyPool)}`);
  const current = members(key, 'current', rec.current);
  const list = rec.earlier;
  if (!Array.isArray(list) || list.length > MAX_TABLES_PER_HISTORY) {
    throw invalidRecord(key, `earlier: ${shown(list)} is not a list of at most ${MAX_TABLES_PER_HISTORY} tables`);
  }
  const earlier: EarlierPoolTable[] = list.map((t: unknown, i) => {
    if (typeof t !== 'object' || t === null || Array.isArray(t)) {
      throw invalidRecord(key, `earlier[${i}]: ${shown(t)} is not an object`);
    }
    const { untilMs, members: rows } = t as Record<string, unknown>;
    if (typeof untilMs !== 'number' || !Number.isSafeInteger(untilMs) || untilMs < 0) {
      throw invalidRecord(key, `earlier[${i}].untilMs: ${shown(untilMs)} is not a time in ms (an integer >= 0)`);
    }
    return { untilMs, members: members(key, `earlier[${i}].members`, rows) };
  });
  return { pool, current, earlier };
}
