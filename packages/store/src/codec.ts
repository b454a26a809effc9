/**
 * The desired document and its pointer. A fleet of 100 VIPs x 1,000 members does not fit one etcd value
 * (1.5 MiB default request limit) nor one default txn (128 ops) if stored per member, so the document is written
 * as chunks under a fresh generation and then published by switching one pointer key (docs/design/0002).
 */
import { createHash } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import { ConfigError, type Fleet, formatProblem, parseFleet } from '@l4fleet/config';
import { StoreError } from './errors.js';
import { CHUNK_BYTES, GZIP_THRESHOLD_BYTES, INLINE_MAX_BYTES } from './layout.js';

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
}

export interface EncodedDocument {
  readonly pointer: Pointer;
  readonly chunks: Buffer[];
}

export function newGenerationId(): string {
  return `${Date.now().toString(36)}-${createHash('sha256').update(String(Math.random())).digest('hex').slice(0, 8)}`;
}

export function encodeDocument(fleet: Fleet & { hashSeed: number }, generation: string, now: Date): EncodedDocument {
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
      },
      chunks: [],
    };
  }
  const encoding = json.length > GZIP_THRESHOLD_BYTES ? 'gzip' : 'json';
  const body = encoding === 'gzip' ? gzipSync(json, { level: 6 }) : json;
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
    },
    chunks,
  };
}

const invalid = (key: string, msg: string, cause?: unknown) =>
  new StoreError('INVALID_STATE', `${key}: ${msg}`, cause === undefined ? undefined : { cause });

export function decodePointer(key: string, value: Buffer): Pointer {
  let p: Partial<Pointer>;
  try {
    p = JSON.parse(value.toString('utf8')) as Partial<Pointer>;
  } catch (err) {
    throw invalid(key, `${JSON.stringify(value.toString('utf8').slice(0, 60))} is not JSON`, err);
  }
  if (typeof p !== 'object' || p === null) throw invalid(key, 'is not a JSON object');
  if (p.schema !== DOCUMENT_SCHEMA) throw invalid(key, `schema ${JSON.stringify(p.schema)} is not ${DOCUMENT_SCHEMA}`);
  if (typeof p.generation !== 'string' || !/^[a-z0-9-]{1,64}$/.test(p.generation)) {
    throw invalid(key, `generation ${JSON.stringify(p.generation)} is not a generation id`);
  }
  if (p.encoding !== 'inline' && p.encoding !== 'json' && p.encoding !== 'gzip') {
    throw invalid(key, `encoding ${JSON.stringify(p.encoding)} is not inline | json | gzip`);
  }
  const chunksOk = p.encoding === 'inline' ? p.chunks === 0 : Number.isInteger(p.chunks) && (p.chunks as number) >= 1;
  if (!chunksOk) throw invalid(key, `chunks ${JSON.stringify(p.chunks)} does not fit encoding ${p.encoding}`);
  if (p.encoding === 'inline' && (typeof p.document !== 'object' || p.document === null)) {
    throw invalid(key, 'inline document is missing');
  }
  if (typeof p.sha256 !== 'string') throw invalid(key, 'sha256 is missing');
  if (!Number.isInteger(p.hashSeed)) throw invalid(key, `hashSeed ${JSON.stringify(p.hashSeed)} is not an integer`);
  return p as Pointer;
}

/** Reassembles, verifies and validates the document; every failure is INVALID_STATE naming the key. */
export function decodeDocument(pointerKey: string, pointer: Pointer, chunks: readonly Buffer[]): Fleet {
  if (chunks.length !== pointer.chunks) {
    throw invalid(pointerKey, `generation ${pointer.generation} has ${chunks.length} of ${pointer.chunks} chunks`);
  }
  if (pointer.encoding === 'inline')
    return validateDocument(pointerKey, pointer, pointer.document as { schema?: unknown; fleet?: unknown });
  const body = Buffer.concat(chunks);
  const sum = createHash('sha256').update(body).digest('hex');
  if (sum !== pointer.sha256)
    throw invalid(pointerKey, `generation ${pointer.generation}: sha256 ${sum} is not ${pointer.sha256}`);
  let doc: { schema?: unknown; fleet?: unknown };
  try {
    doc = JSON.parse((pointer.encoding === 'gzip' ? gunzipSync(body) : body).toString('utf8'));
  } catch (err) {
    throw invalid(pointerKey, `generation ${pointer.generation} does not decode: ${(err as Error).message}`, err);
  }
  return validateDocument(pointerKey, pointer, doc);
}

function validateDocument(pointerKey: string, pointer: Pointer, doc: { schema?: unknown; fleet?: unknown }): Fleet {
  if (doc.schema !== DOCUMENT_SCHEMA)
    throw invalid(pointerKey, `document schema ${JSON.stringify(doc.schema)} is not ${DOCUMENT_SCHEMA}`);
  try {
    const fleet = parseFleet(doc.fleet);
    if (fleet.hashSeed !== pointer.hashSeed) {
      throw invalid(pointerKey, `document hashSeed ${fleet.hashSeed} differs from the pointer's ${pointer.hashSeed}`);
    }
    return fleet;
  } catch (err) {
    if (err instanceof ConfigError) {
      throw invalid(pointerKey, `stored fleet is invalid: ${err.problems.map(formatProblem).join('; ')}`, err);
    }
    throw err;
  }
}

/** Parses a JSON value of a record key, or throws INVALID_STATE naming the key. */
export function decodeJson<T>(key: string, value: Buffer): T {
  try {
    const v = JSON.parse(value.toString('utf8')) as unknown;
    if (typeof v !== 'object' || v === null) throw new Error('not an object');
    return v as T;
  } catch (err) {
    throw invalid(key, `${JSON.stringify(value.toString('utf8').slice(0, 60))} is not a JSON object`, err);
  }
}
