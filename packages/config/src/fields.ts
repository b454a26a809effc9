/**
 * Field checks for configuration parsers: each reports a problem (path + value + what was expected) and carries on
 * with a default, so a user sees every problem of a file in one run. Used by parseFleet() here and by the agent's
 * parseAgentConfig(), so both files report problems in the same words.
 */
import { canonicalAddress } from './address.js';
import { escapeControls } from './control-text.js';
import type { ConfigProblem } from './errors.js';

export type RawObject = Record<string, unknown>;

/** Collects problems in the order they are found. */
export class Problems {
  readonly list: ConfigProblem[] = [];
  add(path: string, message: string): void {
    this.list.push({ path, message });
  }
}

/** Longest value text a message shows: a 16 MiB string or a deep object must not become a 16 MiB error line. */
export const MAX_SHOWN_CHARS = 120;
const SHOWN_ITEMS = 8;
const SHOWN_DEPTH = 3;
/** Longest key text showKind shows of a map. */
const SHOWN_KEY_CHARS = 40;

/**
 * Keys whose value a message never shows (a BGP MD5 key, etcd's or NATS's password, a NATS token): messages reach
 * the error log, stderr, --check and, on an agent reload, the config.reload event (NATS, the dashboard timeline).
 */
const SECRET_KEY = /password|token|secret/i;

/**
 * JSON text of a string or key, DEL and C1 escaped as `\uXXXX` like C0 (JSON.stringify keeps them raw, and U+009B is
 * a terminal's CSI): messages reach logs and terminals.
 */
function quoted(s: string): string {
  return escapeControls(JSON.stringify(s));
}

/**
 * JSON text of `v`, but of at most SHOWN_ITEMS items per level and SHOWN_DEPTH levels (no recursion past them), the
 * values under a SECRET_KEY shown as "<hidden>", no control character raw.
 */
function brief(v: unknown, depth: number): string {
  if (v === null || typeof v !== 'object') {
    if (typeof v === 'string')
      return v.length > MAX_SHOWN_CHARS ? `${quoted(v.slice(0, MAX_SHOWN_CHARS))}...` : quoted(v);
    if (typeof v === 'number' && !Number.isFinite(v)) return String(v); // JSON would say null
    return escapeControls(JSON.stringify(v) ?? String(v));
  }
  if (depth >= SHOWN_DEPTH) return Array.isArray(v) ? '[...]' : '{...}';
  if (Array.isArray(v)) {
    const items = v.slice(0, SHOWN_ITEMS).map((x) => (x === undefined ? 'null' : brief(x, depth + 1)));
    return `[${items.join(',')}${v.length > SHOWN_ITEMS ? `,... ${v.length} items` : ''}]`;
  }
  const keys = Object.keys(v);
  const items = keys
    .slice(0, SHOWN_ITEMS)
    .filter((k) => (v as RawObject)[k] !== undefined)
    .map((k) => `${quoted(k)}:${SECRET_KEY.test(k) ? '"<hidden>"' : brief((v as RawObject)[k], depth + 1)}`);
  return `{${items.join(',')}${keys.length > SHOWN_ITEMS ? `,... ${keys.length} keys` : ''}}`;
}

/**
 * A value as a message shows it: strings quoted, `missing` for undefined; long or deep values cut short; every
 * control character (C0, DEL, C1) escaped as `\uXXXX`.
 */
export function showValue(v: unknown): string {
  if (v === undefined) return 'missing';
  const text = brief(v, 0);
  return text.length > MAX_SHOWN_CHARS + 8 ? `${text.slice(0, MAX_SHOWN_CHARS)}...` : text;
}

/**
 * What a parser keeps in place of a refused value so it can go on and report every problem: a string as written,
 * anything else as showValue shows it. String(v) threw on `{toString: 1}` (TypeError) and on a list nested
 * thousands deep (RangeError), which escaped the parser as no ConfigError at all.
 */
export function valueText(v: unknown): string {
  return typeof v === 'string' ? v : showValue(v);
}

/**
 * A value of the wrong shape (a map where a list belongs, a string or list where a section belongs) as a message
 * shows it: by its kind alone, never by what it holds. A peer written without its `- ` makes bgp.peers a map holding
 * the peer's password, and `nats: "token ..."` is the token: showValue would print both. Numbers, booleans and null
 * are shown as they are; a map by its first keys (its values never).
 */
export function showKind(v: unknown): string {
  if (typeof v === 'string') return 'a string';
  if (Array.isArray(v)) return `a list of ${v.length} item${v.length === 1 ? '' : 's'}`;
  if (isRawObject(v)) {
    const keys = Object.keys(v);
    if (keys.length === 0) return 'a map (no keys)';
    const shown = keys
      .slice(0, SHOWN_ITEMS)
      .map((k) => (k.length > SHOWN_KEY_CHARS ? `${k.slice(0, SHOWN_KEY_CHARS)}...` : k));
    return `a map (keys ${shown.join(', ')}${keys.length > SHOWN_ITEMS ? `, ... ${keys.length} keys` : ''})`;
  }
  return showValue(v);
}

export function isRawObject(v: unknown): v is RawObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Reports every key of `o` that is not in `allowed`. */
export function checkKeys(p: Problems, path: string, o: RawObject, allowed: readonly string[]): void {
  for (const k of Object.keys(o)) {
    if (allowed.includes(k)) continue;
    const key = k.length > MAX_SHOWN_CHARS ? `${k.slice(0, MAX_SHOWN_CHARS)}...` : k;
    p.add(path ? `${path}.${key}` : key, `is not a known field (known: ${allowed.join(', ')})`);
  }
}

/** An optional (or `required`) object with only `allowed` keys; {} when absent or wrong. */
export function sectionField(
  p: Problems,
  path: string,
  v: unknown,
  allowed: readonly string[],
  required = false,
): RawObject {
  if (v === undefined || v === null) {
    if (required) p.add(path, 'missing');
    return {};
  }
  if (!isRawObject(v)) {
    p.add(path, `${showKind(v)} is not an object`);
    return {};
  }
  checkKeys(p, path, v, allowed);
  return v;
}

/** An integer in [min, max]; `dflt` when absent (absent without a default is a problem). */
export function intField(
  p: Problems,
  path: string,
  v: unknown,
  min: number,
  max: number,
  what: string,
  dflt?: number,
): number {
  if (v === undefined && dflt !== undefined) return dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    p.add(path, `${showValue(v)} is not ${what} (${min}-${max})`);
    return dflt ?? min;
  }
  return v;
}

export function oneOfField<T extends string>(
  p: Problems,
  path: string,
  v: unknown,
  allowed: readonly T[],
  dflt?: T,
): T {
  if (v === undefined && dflt !== undefined) return dflt;
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
    p.add(path, `${showValue(v)} is not one of ${allowed.join(' | ')}`);
    return dflt ?? (allowed[0] as T);
  }
  return v as T;
}

/** A non-empty string matching `re` if given. */
export function stringField(
  p: Problems,
  path: string,
  v: unknown,
  re: RegExp | undefined,
  what: string,
  dflt?: string,
): string {
  if (v === undefined && dflt !== undefined) return dflt;
  if (typeof v !== 'string' || v.length === 0 || (re && !re.test(v))) {
    p.add(path, `${showValue(v)} is not ${what}`);
    return dflt ?? '';
  }
  return v;
}

export function boolField(p: Problems, path: string, v: unknown, dflt: boolean): boolean {
  if (v === undefined) return dflt;
  if (typeof v !== 'boolean') {
    p.add(path, `${showValue(v)} is not true or false`);
    return dflt;
  }
  return v;
}

/** A list; a comma-separated string is accepted too (`--etcd a,b`, `endpoints: a,b`). */
export function listField(p: Problems, path: string, v: unknown): unknown[] {
  if (v === undefined) return [];
  if (typeof v === 'string') return v.split(',').filter((s) => s.length > 0);
  if (!Array.isArray(v)) {
    p.add(path, `${showKind(v)} is not a list`);
    return [];
  }
  return v;
}

/** An IPv4 or IPv6 address (of `family` if given), canonical (RFC 5952); undefined after reporting a problem. */
export function addressField(
  p: Problems,
  path: string,
  v: unknown,
  family?: 4 | 6,
): { family: 4 | 6; address: string } | undefined {
  const expected = family ? `an IPv${family}` : 'an IPv4 or IPv6';
  try {
    if (typeof v !== 'string') throw new Error('not a string');
    const a = canonicalAddress(v, path);
    if (!family || a.family === family) return a;
  } catch {
    // reported below
  }
  p.add(path, `${showValue(v)} is not ${expected} address`);
  return undefined;
}
