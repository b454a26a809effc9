/** Reads agent.yaml (YAML 1.2; JSON is YAML too), applies flag overrides, validates. */
import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { AgentError } from '../errors.js';
import { applyOverrides, type ConfigOverrides } from './overrides.js';
import { parseAgentConfig } from './parse.js';
import type { AgentConfig } from './types.js';

export function parseAgentConfigText(text: string, overrides: ConfigOverrides = {}): AgentConfig {
  let raw: unknown;
  try {
    raw = parseYaml(text, { prettyErrors: false, uniqueKeys: true });
  } catch (err) {
    const msg = err instanceof Error ? (err.message.split('\n')[0] ?? '') : String(err);
    throw new AgentError('CONFIG_INVALID', `not valid YAML: ${msg}`, {
      cause: err,
      problems: [{ path: '', message: `not valid YAML: ${msg}` }],
    });
  }
  return parseAgentConfig(applyOverrides(raw ?? {}, overrides));
}

/** Loads `file` (absent file: flags alone must make a valid config). */
export async function loadAgentConfig(file: string | undefined, overrides: ConfigOverrides = {}): Promise<AgentConfig> {
  if (file === undefined) return parseAgentConfig(applyOverrides({}, overrides));
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new AgentError('CONFIG_UNREADABLE', `config file "${file}" cannot be read: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return parseAgentConfigText(text, overrides);
}
