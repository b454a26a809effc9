/**
 * The desired document and its pointer. A fleet of 100 VIPs x 1,000 members does not fit one etcd value
 * (1.5 MiB default request limit) nor one default txn (128 ops) if stored per member, so the document is written
 * as chunks under a fresh generation and then published by switching one pointer key (docs/design/0002).
 */
import { createHash } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import {
  ConfigError,
  DEFAULT_GUE_PORT,
  DEFAULT_POOL_FORWARDING,
  defaultProfile,
  defaultSecondChance,
  type Fleet,
  formatProblem,
  type Pool,
  parseFleet,
  type Vip,
} from '@l4fleet/config';
import { invalidRecord, StoreError } from './errors.js';
import { CHUNK_BYTES, GZIP_THRESHOLD_BYTES, INLINE_MAX_BYTES } from './layout.js';
import { MAX_DOCUMENT_BYTES, MAX_DOCUMENT_JSON_BYTES, MAX_POINTER_BYTES } from './limits.js';
import { parseRecord, shown, undecodable } from './record-check.js';

export const DOCUMENT_SCHEMA = 1;

export interface Pointer {
  readonly schema: number;
  readonly generation: string;
  readonly chunks: number;
  /** Total bytes of the (possibly compressed) document. */
  readonly bytes: number;
  /** `inline`: a small document sits in the pointer itself (chunks 0): one key, one write, no extra read. */
  readonly encoding: 'inline' | 'json' | 'gzip';
  /** The document, when encoding is `inline`. */
  readonly document?: unknown;
  /** sha256 hex of the concatenated chunks: a torn or hand-edited document is detected, never half-read. */
  readonly sha256: string;
  readonly hashSeed: number;
  readonly appliedAt: string;
  /**
   * Who wrote it, as the writer says (`alice@ops1 (l4fleet apply)`, `dashboard 198.18.0.9`); at most
   * MAX_APPLIED_BY_CHARS printable characters. Absent in pointers written before it existed; older nodes ignore it.
   */
  readonly appliedBy?: string;
}

/** The longest `appliedBy` a pointer may carry. */
export const MAX_APPLIED_BY_CHARS = 200;

/** A writer's name as a pointer carries it: control characters out, at most MAX_APPLIED_BY_CHARS. */
export function appliedByText(by: string): string {
  return by
    .replace(/\p{Cc}/gu, ' ')
    .trim()
    .slice(0, MAX_APPLIED_BY_CHARS)
    .trim();
}

export interface EncodedDocument {
  readonly pointer: Pointer;
  readonly chunks: Buffer[];
}

export function newGenerationId(): string {
  return `${Date.now().toString(36)}-${createHash('sha256').update(String(Math.random())).digest('hex').slice(0, 8)}`;
}

/** Whether two settings objects hold the same fields with the same values (flat objects of numbers and strings). */
function sameSetting(a: object, b: object): boolean {
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  const keys = new Set([...Object.keys(x), ...Object.keys(y)]);
  return [...keys].every((k) => x[k] === y[k]);
}

/**
 * The fleet as it is stored: every pool and VIP field added after the first parseFleet (commit 231d1be) is left out
 * while it is the default parseFleet fills in (a pool's `forwarding` l2, `guePort` 6080 and `secondChance`, a VIP's
 * `profile`), as parseFleet itself leaves out `state`, `minUpMembers` and the other later fields when not given.
 * Nodes of earlier versions refuse every field they do not know (parseFleet's checkKeys), so a fleet that uses no
 * later feature must carry none, or every apply and edit during a rolling upgrade (operator guide §4) would be
 * refused by the nodes not yet upgraded. parseFleet, which every reader runs on the stored document, puts the
 * defaults back: readers see the fleet that was applied, tables and checksums unchanged.
 */
function storedForm(fleet: Fleet & { hashSeed: number }): Fleet & { hashSeed: number } {
  const pools = fleet.pools.map((pool): Pool => {
    const { forwarding, guePort, secondChance, ...rest } = pool;
    return {
      ...rest,
      ...(forwarding === undefined || forwarding === DEFAULT_POOL_FORWARDING ? {} : { forwarding }),
      ...(guePort === undefined || guePort === DEFAULT_GUE_PORT ? {} : { guePort }),
      ...(secondChance === undefined || sameSetting(secondChance, defaultSecondChance()) ? {} : { secondChance }),
    } as Pool;
  });
  const vips = fleet.vips.map((vip): Vip => {
    if (vip.profile === undefined || !sameSetting(vip.profile, defaultProfile(vip.protocol))) return vip;
    const { profile: _default, ...rest } = vip;
    return rest;
  });
  return { ...fleet, pools, vips };
}

export function encodeDocument(
  parsed: Fleet & { hashSeed: number },
  generation: string,
  now: Date,
  by?: string,
): EncodedDocument {
  const appliedBy = by === undefined || appliedByText(by) === '' ? {} : { appliedBy: appliedByText(by) };
  const fleet = storedForm(parsed);
  const json = Buffer.from(JSON.stringify({ schema: DOCUMENT_SCHEMA, fleet }));
  if (json.length <= INLINE_MAX_BYTES) {
    const document = { schema: DOCUMENT_SCHEMA, fleet };
    return {
      pointer: {
        schema: DOCUMENT_SCHEMA,
        generation,
        chunks: 0,
        bytes: json.length,
        encoding: 'inline',
        document,
        sha256: createHash('sha256').update(json).digest('hex'),
        hashSeed: fleet.hashSeed,
        appliedAt: now.toISOString(),
        ...appliedBy,
      },
      chunks: [],
    };
  }
  const encoding = json.length > GZIP_THRESHOLD_BYTES ? 'gzip' : 'json';
  const body = encoding === 'gzip' ? gzipSync(json, { level: 6 }) : json;
  // Never write what readers refuse (limits.ts); config's fleet bounds keep real fleets far below these.
  if (json.length > MAX_DOCUMENT_JSON_BYTES || body.length > MAX_DOCUMENT_BYTES) {
    throw new StoreError(
      'TOO_LARGE',
      `apply: the fleet document is ${json.length} bytes of JSON (${body.length} stored), more than the limits of ` +
        `${MAX_DOCUMENT_JSON_BYTES} (MAX_DOCUMENT_JSON_BYTES) and ${MAX_DOCUMENT_BYTES} (MAX_DOCUMENT_BYTES)`,
    );
  }
  const chunks: Buffer[] = [];
  for (let off = 0; off < body.length || chunks.length === 0; off += CHUNK_BYTES) {
    chunks.push(body.subarray(off, off + CHUNK_BYTES));
  }
  return {
    pointer: {
      schema: DOCUMENT_SCHEMA,
      generation,
      chunks: chunks.length,
      bytes: body.length,
      encoding,
      sha256: createHash('sha256').update(body).digest('hex'),
      hashSeed: fleet.hashSeed,
      appliedAt: now.toISOString(),
      ...appliedBy,
    },
    chunks,
  };
}

/** Pointer fields checked against their own claims before a single chunk is fetched (docs/design/0002, Bounds). */
export function decodePointer(key: string, value: Buffer): Pointer {
  try {
    return checkPointer(key, value);
  } catch (err) {
    throw undecodable(key, 'value', err);
  }
}

function checkPointer(key: string, value: Buffer): Pointer {
  const p = parseRecord(key, value, MAX_POINTER_BYTES) as Partial<Record<keyof Pointer, unknown>>;
  const bad = (field: string, v: unknown, what: string) => invalidRecord(key, `${field} ${shown(v)} ${what}`);
  if (p.schema !== DOCUMENT_SCHEMA) throw bad('schema', p.schema, `is not ${DOCUMENT_SCHEMA}`);
  if (typeof p.generation !== 'string' || !/^[a-z0-9-]{1,64}$/.test(p.generation)) {
    throw bad('generation', p.generation, 'is not a generation id');
  }
  if (p.encoding !== 'inline' && p.encoding !== 'json' && p.encoding !== 'gzip') {
    throw bad('encoding', p.encoding, 'is not inline | json | gzip');
  }
  if (typeof p.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(p.sha256)) {
    throw bad('sha256', p.sha256, 'is not 64 hex digits');
  }
  if (!Number.isInteger(p.hashSeed) || (p.hashSeed as number) < 0 || (p.hashSeed as number) > 0xffff_ffff) {
    throw bad('hashSeed', p.hashSeed, 'is not an integer 0..4294967295');
  }
  if (typeof p.appliedAt !== 'string' || p.appliedAt.length > 64) throw bad('appliedAt', p.appliedAt, 'is not a time');
  if (
    p.appliedBy !== undefined &&
    (typeof p.appliedBy !== 'string' || p.appliedBy !== appliedByText(p.appliedBy) || p.appliedBy === '')
  ) {
    throw bad('appliedBy', p.appliedBy, `is not a writer's name (1-${MAX_APPLIED_BY_CHARS} printable characters)`);
  }
  const bytes = p.bytes;
  const maxBytes = p.encoding === 'inline' ? INLINE_MAX_BYTES : MAX_DOCUMENT_BYTES;
  if (typeof bytes !== 'number' || !Number.isInteger(bytes) || bytes < 1 || bytes > maxBytes) {
    throw bad('bytes', bytes, `is not a size of 1..${maxBytes} bytes for encoding ${p.encoding}`);
  }
  const chunks = p.encoding === 'inline' ? 0 : Math.ceil(bytes / CHUNK_BYTES);
  if (p.chunks !== chunks) {
    throw bad(
      'chunks',
      p.chunks,
      `is not ${chunks} (${bytes} bytes in chunks of ${CHUNK_BYTES}, encoding ${p.encoding})`,
    );
  }
  if (p.encoding === 'inline') {
    if (typeof p.document !== 'object' || p.document === null) throw bad('document', p.document, 'is not an object');
    // The writer hashed JSON.stringify of this very object; JSON.parse + JSON.stringify gives the same bytes back.
    let json: Buffer;
    try {
      json = Buffer.from(JSON.stringify(p.document));
    } catch (err) {
      throw undecodable(key, 'document', err);
    }
    if (json.length !== bytes) throw bad('bytes', bytes, `is not the inline document's size ${json.length}`);
    const sum = createHash('sha256').update(json).digest('hex');
    if (sum !== p.sha256) throw bad('sha256', p.sha256, `is not the inline document's sha256 ${sum}`);
  }
  return p as unknown as Pointer;
}

/** The size chunk `i` of a generation must have: CHUNK_BYTES, the last one the rest. */
export function chunkSize(pointer: Pointer, i: number): number {
  return i < pointer.chunks - 1 ? CHUNK_BYTES : pointer.bytes - CHUNK_BYTES * (pointer.chunks - 1);
}

/** Checks one chunk as it is read (before the next is fetched): present, and of the size the pointer implies. */
export function checkChunk(pointerKey: string, pointer: Pointer, i: number, chunk: Buffer | undefined): Buffer {
  const where = `generation ${pointer.generation} chunk ${i}`;
  if (chunk === undefined) throw invalidRecord(pointerKey, `chunks: ${where} of ${pointer.chunks} is missing`);
  const want = chunkSize(pointer, i);
  if (chunk.length !== want) throw invalidRecord(pointerKey, `bytes: ${where} is ${chunk.length} bytes, not ${want}`);
  return chunk;
}

/** Reassembles, verifies and validates the document; every failure is `INVALID_RECORD` naming the key. */
export function decodeDocument(pointerKey: string, pointer: Pointer, chunks: readonly Buffer[]): Fleet {
  if (chunks.length !== pointer.chunks) {
    throw invalidRecord(
      pointerKey,
      `chunks: generation ${pointer.generation} has ${chunks.length} of ${pointer.chunks} chunks`,
    );
  }
  if (pointer.encoding === 'inline')
    return validateDocument(pointerKey, pointer, pointer.document as { schema?: unknown; fleet?: unknown });
  for (const [i, c] of chunks.entries()) checkChunk(pointerKey, pointer, i, c);
  const body = Buffer.concat(chunks);
  const sum = createHash('sha256').update(body).digest('hex');
  if (sum !== pointer.sha256) {
    throw invalidRecord(pointerKey, `sha256: ${pointer.sha256} is not generation ${pointer.generation}'s ${sum}`);
  }
  let doc: { schema?: unknown; fleet?: unknown };
  try {
    const json = pointer.encoding === 'gzip' ? gunzipSync(body, { maxOutputLength: MAX_DOCUMENT_JSON_BYTES }) : body;
    doc = JSON.parse(json.toString('utf8'));
  } catch (err) {
    throw invalidRecord(
      pointerKey,
      `encoding: generation ${pointer.generation} does not decode as ${pointer.encoding} JSON of at most ` +
        `${MAX_DOCUMENT_JSON_BYTES} bytes: ${(err as Error).message}`,
      err,
    );
  }
  return validateDocument(pointerKey, pointer, doc);
}

function validateDocument(pointerKey: string, pointer: Pointer, doc: { schema?: unknown; fleet?: unknown }): Fleet {
  if (typeof doc !== 'object' || doc === null)
    throw invalidRecord(pointerKey, `document: ${shown(doc)} is not an object`);
  if (doc.schema !== DOCUMENT_SCHEMA)
    throw invalidRecord(pointerKey, `document.schema: ${shown(doc.schema)} is not ${DOCUMENT_SCHEMA}`);
  let fleet: Fleet;
  try {
    fleet = parseFleet(doc.fleet);
  } catch (err) {
    if (err instanceof ConfigError) {
      throw invalidRecord(pointerKey, `document.fleet: ${err.problems.map(formatProblem).join('; ')}`, err);
    }
    throw undecodable(pointerKey, 'document.fleet', err);
  }
  if (fleet.hashSeed !== pointer.hashSeed) {
    throw invalidRecord(
      pointerKey,
      `document.fleet.hashSeed: ${fleet.hashSeed} differs from the pointer's hashSeed ${pointer.hashSeed}`,
    );
  }
  return fleet;
}

/** The hash seed of a pointer that does not decode, when that one field is still readable (a recovery keeps it). */
export function salvageHashSeed(value: Buffer): number | undefined {
  if (value.length > MAX_POINTER_BYTES) return undefined;
  try {
    const seed = (JSON.parse(value.toString('utf8')) as { hashSeed?: unknown }).hashSeed;
    return Number.isInteger(seed) && (seed as number) >= 0 && (seed as number) <= 0xffff_ffff
      ? (seed as number)
      : undefined;
  } catch {
    return undefined;
  }
}
