/**
 * Values written into a daemon's config text. A value is one token of a line: a newline in an FRR password, or a
 * quote in a TOML string, would end it and let the rest be read as config of its own. So TOML strings are escaped,
 * and FRR values, which have no quoting at all, are refused unless they are one plain word (or an address).
 */
import { isIP, isIPv4 } from 'node:net';
import { DaemonError } from './errors.js';

// \p{Cs}: a lone surrogate, which no config file can carry as text.
const CONTROL = /[\p{Cc}\p{Cs}]/u;
const NOT_A_WORD = /[\s\p{Cc}\p{Cs}]/u;

/** `value` quoted for an error message, control characters shown as escapes. */
function shown(value: string): string {
  return JSON.stringify(value).replace(
    /[\p{Cc}\p{Cs}]/gu,
    (c) => `\\u${(c.codePointAt(0) ?? 0).toString(16).padStart(4, '0')}`,
  );
}

/**
 * The error for a refused value, naming `where` and the value; a password's value is not shown (`where` ends in
 * `.password`): the message goes to logs and terminals, and a password refused for one stray character is otherwise
 * the real password.
 */
function invalid(where: string, value: string, why: string): DaemonError {
  const what = where.endsWith('.password') ? '(value not shown)' : shown(value);
  return new DaemonError('INVALID_CONFIG', `${where} ${what}: ${why}`);
}

/**
 * `value` as a TOML basic string. JSON's escaping of `"` and `\` is TOML's own, and printable text needs no other;
 * a control character is refused (no config value of ours has one, and TOML escapes a few differently from JSON).
 */
export function tomlString(where: string, value: string): string {
  if (CONTROL.test(value)) throw invalid(where, value, 'a control character has no place in the TOML config');
  return JSON.stringify(value);
}

/** `value` as one FRR token (name, password): FRR has no quoting, so whitespace would split or end the line. */
export function frrWord(where: string, value: string): string {
  if (value === '') throw invalid(where, value, 'is empty');
  if (NOT_A_WORD.test(value)) throw invalid(where, value, 'has whitespace or a control character');
  return value;
}

/** `value`, an IPv4 or IPv6 address (a neighbour, a BFD peer). */
export function frrAddress(where: string, value: string): string {
  if (isIP(value) === 0) throw invalid(where, value, 'not an IP address');
  return value;
}

/** `value`, an IPv4 address (a BGP router id is a dotted quad). */
export function frrIpv4(where: string, value: string): string {
  if (!isIPv4(value)) throw invalid(where, value, 'not an IPv4 address');
  return value;
}
