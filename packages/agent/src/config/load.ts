/**
 * Reads agent.yaml (YAML 1.2, core schema; JSON is YAML too), applies flag overrides, validates. A `%YAML 1.1`
 * header is refused: it switched the yaml library to 1.1 (`1:20` read as 80, `yes` as true, `<<` merging maps).
 *
 * Before the yaml library sees the text it is bounded (MAX_AGENT_CONFIG_BYTES) and scanned by @l4fleet/config's
 * textShapeProblem, as fleet files are (bracket depth, block indentation, node estimate): a nesting thousands deep
 * ran the library's stack out, and a later parse in the same process (the reload SIGHUP runs) then aborted Node out
 * of memory, uncatchable, taking the running agent and its BGP sessions down.
 */
import { STRICT_YAML_OPTIONS, textShapeProblem, utf8Bytes } from '@l4fleet/config';
import { LineCounter, parseDocument, visit, type YAMLError } from 'yaml';
import { AgentError } from '../errors.js';
import { applyOverrides, type ConfigOverrides } from './overrides.js';
import { parseAgentConfig } from './parse.js';
import { NotReadable, readRegularFile } from './regular-file.js';
import type { AgentConfig } from './types.js';

/**
 * What each YAML error is, in words of our own: the yaml library's messages quote the source (`Unresolved alias ...:
 * N3wS3cret` for a password starting with `*`), and this message reaches the logs and, on a reload, the config.reload
 * event. So a YAML error is told by its line, column and kind, never by the text there.
 */
const YAML_PROBLEMS: Readonly<Record<string, string>> = {
  ALIAS_PROPS: 'an alias (*NAME) with a tag or anchor',
  BAD_ALIAS: 'an alias (*NAME) or anchor (&NAME) that is wrong or not set: a value starting with * or & must be quoted',
  BAD_COLLECTION_TYPE: 'a tag that does not fit its map or list',
  BAD_DIRECTIVE: 'a bad directive (a line starting with %)',
  BAD_DQ_ESCAPE: 'a bad escape in a "double-quoted" value: put a value with \\ in single quotes',
  BAD_INDENT: 'bad indentation',
  BAD_PROP_ORDER: 'an anchor or tag in the wrong place',
  BAD_SCALAR_START: 'a plain value starting with a reserved character (@ or `): quote it',
  BLOCK_AS_IMPLICIT_KEY: 'a map or list where a key was expected (a value with ": " in it must be quoted)',
  BLOCK_IN_FLOW: 'a block map or list inside [...] or {...}',
  DUPLICATE_KEY: 'a key given twice in one map',
  KEY_OVER_1024_CHARS: 'a key longer than 1024 characters',
  MISSING_CHAR: 'a missing character (a closing quote or bracket, a comma, ": " or a space)',
  MULTILINE_IMPLICIT_KEY: 'a key over more than one line',
  MULTIPLE_ANCHORS: 'more than one anchor (&NAME) on a value',
  MULTIPLE_DOCS: 'more than one YAML document (---)',
  MULTIPLE_TAGS: 'more than one tag (!NAME) on a value',
  NON_STRING_KEY: 'a key that is not a string',
  NESTED_TOO_DEEP: 'maps or lists nested too deep',
  RESOURCE_EXHAUSTION: 'too many aliases (an alias bomb)',
  TAB_AS_INDENT: 'a tab used as indentation: use spaces',
  TAG_RESOLVE_FAILED: 'an unknown tag (!NAME): a value starting with ! must be quoted',
  VERSION_1_1: 'a %YAML 1.1 directive: agent.yaml is YAML 1.2',
  UNEXPECTED_TOKEN: 'unexpected text',
};

/** No `cause`: the yaml library's error quotes the source, and pino's err serializer prints the causes' messages. */
function invalidYaml(lines: LineCounter, offset: number, code: string): AgentError {
  const { line, col } = lines.linePos(offset);
  const msg = `not valid YAML at line ${line}, column ${col}: ${YAML_PROBLEMS[code] ?? `a syntax error (${code})`}`;
  return new AgentError('CONFIG_INVALID', msg, { problems: [{ path: '', message: msg }] });
}

/** agent.yaml's size, in bytes (UTF-8): a full example is ~2 KiB; this leaves room for any comments and peers. */
export const MAX_AGENT_CONFIG_BYTES = 1024 * 1024; // 1 MiB

const n = (v: number): string => v.toLocaleString('en-US');

function tooLarge(source: string, bytes: number): AgentError {
  const msg = `the ${source} is ${n(bytes)} bytes, more than the limit of ${n(MAX_AGENT_CONFIG_BYTES)} bytes (MAX_AGENT_CONFIG_BYTES)`;
  return new AgentError('CONFIG_INVALID', msg, { problems: [{ path: '', message: msg }] });
}

/** The size and shape bounds, before any parser sees the text. */
function checkText(text: string, source: string): void {
  // The character count bounds the byte count from below: a huge text is refused without a pass over it.
  const bytes = text.length > MAX_AGENT_CONFIG_BYTES ? text.length : utf8Bytes(text);
  if (bytes > MAX_AGENT_CONFIG_BYTES) throw tooLarge(source, bytes);
  const shape = textShapeProblem(text, true, source);
  if (shape) throw new AgentError('CONFIG_INVALID', shape.message, { problems: [shape] });
}

function parseYamlText(text: string, source: string): unknown {
  checkText(text, source);
  const lines = new LineCounter();
  let doc: ReturnType<typeof parseDocument>;
  try {
    // Warnings too: an unknown tag (`password: !x`) would otherwise make the value '' and print the tag on stderr.
    // The core schema without known tags (STRICT_YAML_OPTIONS, as fleet files): !!timestamp, !!binary, !!set and
    // !!omap are unknown tags, and a %YAML 1.1 header cannot bring back 1.1's scalars or merge keys.
    doc = parseDocument(text, { ...STRICT_YAML_OPTIONS, lineCounter: lines });
  } catch {
    throw invalidYaml(lines, 0, 'NESTED_TOO_DEEP'); // the parser's stack ran out
  }
  const first: YAMLError | undefined = doc.errors[0] ?? doc.warnings[0];
  if (first) {
    // The yaml library reports a stack overflow while composing (a nesting thousands deep) with the code of an
    // alias bomb; only its message tells them apart.
    const deep = first.code === 'RESOURCE_EXHAUSTION' && /call stack/i.test(first.message);
    throw invalidYaml(lines, first.pos[0], deep ? 'NESTED_TOO_DEEP' : first.code);
  }
  if (doc.directives?.yaml.explicit && doc.directives.yaml.version !== '1.2') {
    throw invalidYaml(lines, Math.max(0, text.search(/^%YAML\b/m)), 'VERSION_1_1');
  }
  try {
    return doc.toJS();
  } catch (err) {
    // A nesting deep enough to exhaust the stack (RangeError) is told apart from what follows.
    if (err instanceof RangeError) throw invalidYaml(lines, 0, 'NESTED_TOO_DEEP');
    // Found only here: an alias whose anchor is not set (`password: *secret`, the message quotes the name) or an
    // alias bomb (both ReferenceError).
    let unresolved: number | undefined;
    visit(doc, {
      Alias(_key, node) {
        if (node.resolve(doc) !== undefined) return undefined;
        unresolved = node.range?.[0] ?? 0;
        return visit.BREAK;
      },
    });
    throw unresolved !== undefined
      ? invalidYaml(lines, unresolved, 'BAD_ALIAS')
      : invalidYaml(lines, 0, 'RESOURCE_EXHAUSTION');
  }
}

/** `source` names the text in a size or shape refusal (loadAgentConfig: `config file "PATH"`). */
export function parseAgentConfigText(
  text: string,
  overrides: ConfigOverrides = {},
  source = 'config file',
): AgentConfig {
  const raw = parseYamlText(text, source);
  return parseAgentConfig(applyOverrides(raw ?? {}, overrides));
}

/**
 * The text of `file`, a regular file of at most MAX_AGENT_CONFIG_BYTES (readRegularFile): a larger one is refused by
 * its size, unread. Anything else is refused unread too (NotReadable): a FIFO at the path blocked the open until a
 * writer came, hanging the start, --check, or the reload and every SIGHUP merged behind it; /dev/zero never ends.
 */
function readConfigText(file: string): string {
  try {
    return readRegularFile(file, MAX_AGENT_CONFIG_BYTES).toString('utf8');
  } catch (err) {
    if (err instanceof NotReadable && err.bytes !== undefined) throw tooLarge(`config file "${file}"`, err.bytes);
    throw err;
  }
}

/** Loads `file` (absent file: flags alone must make a valid config). */
export async function loadAgentConfig(file: string | undefined, overrides: ConfigOverrides = {}): Promise<AgentConfig> {
  if (file === undefined) return parseAgentConfig(applyOverrides({}, overrides));
  let text: string;
  try {
    text = readConfigText(file);
  } catch (err) {
    if (err instanceof AgentError) throw err;
    throw new AgentError('CONFIG_UNREADABLE', `config file "${file}" cannot be read: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return parseAgentConfigText(text, overrides, `config file "${file}"`);
}
