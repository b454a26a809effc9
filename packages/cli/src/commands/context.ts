/**
 * What fleet commands share: the global connection flags, opening the store (injectable for tests), output
 * formats, and the mapping of library errors to CLI exit codes (config problems: 1, one line each).
 */
import { hostname, userInfo } from 'node:os';
import type { TlsFileKind } from '@l4fleet/agent';
import { ConfigError, formatProblem, logLevelFromEnv, maskUserinfo } from '@l4fleet/config';
import { ETCD_ENDPOINT_FORM, EtcdFleetStore, etcdEndpointProblems, type FleetStore, StoreError } from '@l4fleet/store';
import { type Command, Option } from 'commander';
import pino, { type Logger } from 'pino';
import { stringify as toYaml } from 'yaml';
import { readPemFlag } from '../flag-files.js';
import { CliError, type CliIo, EXIT_FAILURE, EXIT_USAGE, processIo } from '../io.js';
import { onceOption } from '../options.js';
import { storeErrorHints } from './store-errors.js';

export interface ConnectionFlags {
  readonly etcd?: string;
  readonly cacert?: string;
  readonly cert?: string;
  readonly key?: string;
  readonly user?: string;
  readonly password?: string;
  readonly prefix?: string;
}

/**
 * Opens the store for one command; tests pass their own (e.g. a MemoryFleetStore). `log`: the store's logger
 * (storeLogger: the command's stderr); without it, one on the process's stderr.
 */
export type OpenStore = (flags: ConnectionFlags, log?: Logger) => FleetStore;

/**
 * The store's logger for one command. The store skips a record it cannot read (docs/design/0002 "Every record read is
 * checked") and says so only in its log: silent, a command showed the fleet without it (status then expected every
 * node to count the refused pool's members up, and showed each node differing with no reason). Each refused record
 * is said once on stderr, key and reason; the rest of the store's log shows at L4FLEET_LOG_LEVEL (default silent),
 * as pino JSON. An empty L4FLEET_LOG_LEVEL is unset; an unknown one is a usage error naming it (logLevelFromEnv):
 * handed to pino, every store command failed in pino's words, exit 1, the variable never named.
 */
export function storeLogger(io: CliIo, level = envLogLevel()): Logger {
  const shownFrom = pino.levels.values[level] ?? Number.POSITIVE_INFINITY;
  const said = new Set<string>();
  const write = (line: string): void => {
    let entry: { level?: number; event?: unknown; key?: unknown; err?: unknown };
    try {
      entry = JSON.parse(line) as typeof entry;
    } catch {
      return;
    }
    if (entry.event === 'invalidRecord') {
      const key = typeof entry.key === 'string' ? entry.key : '';
      const reason = typeof entry.err === 'string' ? entry.err : '';
      const text = reason.startsWith(key) ? reason : `${key}: ${reason}`;
      if (said.has(text)) return;
      said.add(text);
      io.err(`warning: skipped a record this l4fleet cannot read: ${text}`);
      return;
    }
    if ((entry.level ?? 0) >= shownFrom) io.err(line.trimEnd());
  };
  // warn at least: the store logs refused records at warn (store record-family.ts warnInvalidRecord).
  const at = shownFrom < (pino.levels.values.warn as number) ? level : 'warn';
  return pino({ level: at }, { write });
}

/** L4FLEET_LOG_LEVEL, default silent; unknown: a usage error (exit 2) naming the variable, the value and the levels. */
function envLogLevel(): string {
  try {
    return logLevelFromEnv(process.env) ?? 'silent';
  } catch (err) {
    if (err instanceof ConfigError) throw new CliError(err.problems.map(formatProblem), EXIT_USAGE, { cause: err });
    throw err;
  }
}

export interface FleetCommandContext {
  readonly io: CliIo;
  readonly openStore: OpenStore;
}

export function addConnectionOptions(program: Command): void {
  program
    // Each given twice is refused (onceOption): commander kept the last, and `--etcd A --etcd B` contacted B alone.
    // L4FLEET_ETCD is read only when --etcd is not given, with no value before it.
    .addOption(
      new Option('--etcd <endpoints>', 'etcd client URLs, comma-separated')
        .env('L4FLEET_ETCD')
        .argParser(onceOption('--etcd')),
    )
    .addOption(
      new Option('--cacert <file>', 'PEM CA that signed the etcd server certificate').argParser(onceOption('--cacert')),
    )
    .addOption(
      new Option('--cert <file>', 'PEM client certificate (etcd --client-cert-auth)').argParser(onceOption('--cert')),
    )
    .addOption(new Option('--key <file>', 'PEM client key').argParser(onceOption('--key')))
    .addOption(new Option('--user <name>', 'etcd user'))
    .addOption(new Option('--password <password>', 'etcd password').env('L4FLEET_ETCD_PASSWORD'))
    .addOption(new Option('--prefix <prefix>', 'etcd key prefix').default('/l4fleet'));
}

/** --cacert, --cert or --key, checked as the agent checks etcd.tls (readPemFlag): an empty CA failed every handshake. */
function readPem(file: string | undefined, flag: string, kind: TlsFileKind): Buffer | undefined {
  return file === undefined ? undefined : readPemFlag(flag, file, kind);
}

export const openEtcdStore: OpenStore = (flags, log) => {
  if (!flags.etcd)
    throw new CliError('--etcd: missing (or set L4FLEET_ETCD), e.g. --etcd http://127.0.0.1:2379', EXIT_USAGE);
  // The form admits no '@', and a password may hold a ',' (the list's separator): split first, its first half would
  // lose the '@' masking goes by and be shown as it is. A value with an '@' is refused whole, masked to its last '@'.
  if (flags.etcd.includes('@'))
    throw new CliError(`--etcd: ${JSON.stringify(maskUserinfo(flags.etcd))} is not ${ETCD_ENDPOINT_FORM}`, EXIT_USAGE);
  const endpoints = flags.etcd
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  // Refused here, not by the etcd client: an empty list failed as "no hosts specified" (exit 1), a URL without a port
  // dialled 443 even over http, and http:// beside https:// threw in the client's constructor (exit 1, --etcd unnamed).
  if (endpoints.length === 0) throw new CliError(`--etcd: no endpoints in ${JSON.stringify(flags.etcd)}`, EXIT_USAGE);
  const problem = etcdEndpointProblems(endpoints)[0];
  if (problem) throw new CliError(`--etcd: ${problem.message}`, EXIT_USAGE);
  if ((flags.user === undefined) !== (flags.password === undefined)) {
    throw new CliError('--user and --password: give both or neither', EXIT_USAGE);
  }
  const ca = readPem(flags.cacert, '--cacert', 'certificates');
  const cert = readPem(flags.cert, '--cert', 'certificates');
  const key = readPem(flags.key, '--key', 'key');
  return new EtcdFleetStore({
    endpoints,
    ...(ca || cert || key
      ? { tls: { ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}) } }
      : {}),
    ...(flags.user !== undefined && flags.password !== undefined
      ? { auth: { username: flags.user, password: flags.password } }
      : {}),
    prefix: flags.prefix ?? '/l4fleet',
    logger: log ?? storeLogger(processIo),
  });
};

/** Runs `fn` with a store opened from the command's global flags, always closing it; maps errors to exit codes. */
export async function withStore<T>(
  ctx: FleetCommandContext,
  cmd: Command,
  fn: (store: FleetStore) => Promise<T>,
): Promise<T> {
  const store = ctx.openStore(cmd.optsWithGlobals() as ConnectionFlags, storeLogger(ctx.io));
  try {
    return await fn(store);
  } catch (err) {
    throw asCliError(err);
  } finally {
    await store.close().catch(() => undefined);
  }
}

export function asCliError(err: unknown): unknown {
  if (err instanceof ConfigError) return new CliError(err.problems.map(formatProblem), EXIT_FAILURE, { cause: err });
  if (err instanceof StoreError)
    return new CliError([err.message, ...storeErrorHints(err)], EXIT_FAILURE, { cause: err });
  return err;
}

export type OutputFormat = 'table' | 'json' | 'yaml';

export function outputFormat(
  value: string,
  allowed: readonly OutputFormat[] = ['table', 'json', 'yaml'],
): OutputFormat {
  if (!(allowed as readonly string[]).includes(value)) {
    throw new CliError(`-o: ${JSON.stringify(value)} is not one of ${allowed.join(' | ')}`, EXIT_USAGE);
  }
  return value as OutputFormat;
}

/** Renders data as JSON or YAML (for scripts); tables are rendered by the command. */
export function renderData(format: 'json' | 'yaml', data: unknown): string {
  return format === 'json' ? JSON.stringify(data, null, 2) : toYaml(data).trimEnd();
}

export function percent(fraction: number): string {
  return `${(100 * fraction).toFixed(2)}%`;
}

/** The local user, or `?` where the OS has none to say (a uid without a passwd entry, in a container). */
function localUser(): string {
  try {
    return userInfo().username;
  } catch {
    return '?';
  }
}

/**
 * Who a write is by, for the fleet's history (`l4fleet history`): `L4FLEET_WRITER` when set (a pipeline says which
 * run), else the local user and host; the etcd user when one is given; and the command as typed, without flags
 * (`alice@ops1 (l4fleet member drain web be2)`). Self-reported: with etcd auth, etcd's user is the checked part.
 */
export function writer(cmd: Command, env: NodeJS.ProcessEnv = process.env): string {
  const path: string[] = [];
  for (let c: Command | null = cmd; c?.parent; c = c.parent) path.unshift(c.name());
  const command = [...path, ...cmd.args].join(' ');
  const flags = cmd.optsWithGlobals() as ConnectionFlags;
  const who = env.L4FLEET_WRITER?.trim() || `${localUser()}@${hostname()}`;
  return `${who}${flags.user ? ` etcd user ${flags.user}` : ''} (l4fleet ${command})`;
}
