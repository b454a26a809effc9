/**
 * readFleetYaml(): fleet YAML text -> plain data (maps, lists, strings, numbers, booleans, null), or a SYNTAX
 * ConfigError naming the line and column. Fleet files are YAML 1.2 with the core schema only: a `%YAML 1.1` header
 * would switch the yaml library to 1.1 (`1:20` read as 80, `0120` as 80, `yes` as true, `<<` merging maps), and
 * its warnings (an unknown tag such as `!secret`, `!!js/function`) would leave the tagged value as a plain string
 * with only a line on stderr. So warnings refuse the file too, and the types only tags make (!!timestamp a Date,
 * !!binary bytes, !!set, !!omap) are unknown tags here rather than values no field expects.
 */
import { LineCounter, parseDocument, type YAMLError } from 'yaml';
import { ConfigError } from './errors.js';
import { MAX_SHOWN_CHARS } from './fields.js';
import { MAX_YAML_ALIASES } from './limits.js';

const CORE_TAG_PREFIX = 'tag:yaml.org,2002:';

/**
 * The yaml library's options for every file l4fleet reads (fleet files here, agent.yaml in @l4fleet/agent), with a
 * LineCounter of the caller's: duplicate keys refused; warnings kept (logLevel silent: nothing on stderr) for the
 * caller to refuse; YAML 1.2's core schema without known tags, so !!timestamp, !!binary, !!set and !!omap are unknown
 * tags and a %YAML 1.1 header cannot bring back 1.1's scalars (`1:20`, `0120`, `yes`) or merge keys.
 */
export const STRICT_YAML_OPTIONS = {
  prettyErrors: false,
  uniqueKeys: true,
  logLevel: 'silent',
  schema: 'core',
  resolveKnownTags: false,
} as const;

function syntax(message: string, cause?: unknown): ConfigError {
  return new ConfigError('SYNTAX', [{ path: '', message: `not valid YAML: ${message}` }], { cause });
}

function at(lines: LineCounter, offset: number): string {
  const { line, col } = lines.linePos(offset);
  return `line ${line}, column ${col}`;
}

/** The yaml library's message in our words where we have them: an unknown tag is named as written (`!!set`). */
function describe(e: YAMLError, lines: LineCounter): string {
  const where = at(lines, e.pos[0]);
  const tag = e.code === 'TAG_RESOLVE_FAILED' ? /^Unresolved tag: (.*)$/.exec(e.message)?.[1] : undefined;
  if (tag !== undefined) {
    const written = tag.startsWith(CORE_TAG_PREFIX) ? `!!${tag.slice(CORE_TAG_PREFIX.length)}` : tag;
    const shown = written.length > MAX_SHOWN_CHARS ? `${written.slice(0, MAX_SHOWN_CHARS)}...` : written;
    return `an unknown tag ${shown} at ${where} (fleet files take plain values: quote a value starting with !)`;
  }
  // The yaml library reports a stack overflow while composing with the code of an alias bomb.
  if (e.code === 'RESOURCE_EXHAUSTION' && /call stack/i.test(e.message)) return `nested too deep at ${where}`;
  const first = e.message.split('\n')[0] ?? e.code;
  return `${first.length > 2 * MAX_SHOWN_CHARS ? `${first.slice(0, 2 * MAX_SHOWN_CHARS)}...` : first} at ${where}`;
}

export function readFleetYaml(text: string): unknown {
  const lines = new LineCounter();
  try {
    const doc = parseDocument(text, { ...STRICT_YAML_OPTIONS, lineCounter: lines });
    const first: YAMLError | undefined = doc.errors[0] ?? doc.warnings[0];
    if (first) throw syntax(describe(first, lines));
    const version = doc.directives?.yaml;
    if (version?.explicit && version.version !== '1.2') {
      const offset = Math.max(0, text.search(/^%YAML\b/m));
      throw syntax(`a %YAML ${version.version} directive at ${at(lines, offset)}: fleet files are YAML 1.2`);
    }
    return doc.toJS({ maxAliasCount: MAX_YAML_ALIASES });
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    // toJS finds an alias without its anchor and an alias bomb (ReferenceError); a nesting deep enough to exhaust
    // the stack is a RangeError, whose message names no cause a user could act on.
    if (err instanceof RangeError) throw syntax('nested too deep', err);
    throw syntax(err instanceof Error ? (err.message.split('\n')[0] ?? err.name) : String(err), err);
  }
}
