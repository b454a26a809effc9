/**
 * Flags override the file: each flag names a dotted path in the raw config (`etcd.endpoints`), set before
 * validation, so a bad flag value is reported with the same path and message as a bad file value.
 */
import { showValue } from '@l4fleet/config';
import { AgentError } from '../errors.js';

export type ConfigOverrides = Readonly<Record<string, unknown>>;

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Returns a copy of `raw` with every `path: value` of `overrides` set (undefined values are skipped). No `raw` (an
 * empty file: null) is flags alone; any other value that is no object (a YAML list or word) is refused as such,
 * not reported as every section missing.
 */
export function applyOverrides(raw: unknown, overrides: ConfigOverrides): unknown {
  if (raw !== null && raw !== undefined && !isObj(raw)) {
    const message = `the agent config is ${showValue(raw)}, not an object`;
    throw new AgentError('CONFIG_INVALID', message, { problems: [{ path: '', message }] });
  }
  const root: Record<string, unknown> = isObj(raw) ? structuredClone(raw) : {};
  for (const [path, value] of Object.entries(overrides)) {
    if (value === undefined) continue;
    const parts = path.split('.');
    if (parts.some((s) => s.length === 0 || s === '__proto__' || s === 'constructor' || s === 'prototype')) {
      throw new AgentError('FLAG_INVALID', `override path ${JSON.stringify(path)} is not a dotted field path`);
    }
    let obj = root;
    for (const part of parts.slice(0, -1)) {
      const next = obj[part];
      if (!isObj(next)) obj[part] = {};
      obj = obj[part] as Record<string, unknown>;
    }
    obj[parts[parts.length - 1] as string] = value;
  }
  return root;
}
