/**
 * `l4fleet events`: follows the agents' NATS events (subjects `<prefix>.<fleet>.<kind>.<node>`, see
 * docs/design/0006-agent.md), as text lines for people or JSON lines for scripts, until interrupted or `--count`.
 */
import { AgentError, EVENT_KINDS, eventFilter, type FollowEventsOptions, followEvents } from '@l4fleet/agent';
import { maskUserinfo } from '@l4fleet/config';
import type { Command } from 'commander';
import { readPemFlag, readSecretFlag } from '../flag-files.js';
import { CliError, type CliIo, EXIT_FAILURE, EXIT_SIGINT, EXIT_USAGE } from '../io.js';
import { integerOption, onceOption } from '../options.js';
import { printableText } from '../printable.js';

/** The NATS login flags `events` and `dashboard` share (the operator guide's secured NATS: tls://, a CA, a token). */
export interface NatsFlags {
  readonly natsTokenFile?: string;
  readonly natsUser?: string;
  readonly natsCa?: string;
}

/**
 * Adds --nats-token-file, --nats-user and --nats-ca (secrets from files or the environment, never a flag: `ps`). The
 * two naming a file are refused when given twice (onceOption): commander kept the last, silently.
 */
export function addNatsLoginOptions(command: Command): Command {
  return command
    .option('--nats-token-file <file>', 'NATS token (or env L4FLEET_NATS_TOKEN)', onceOption('--nats-token-file'))
    .option('--nats-user <name>', 'NATS user; the password from env L4FLEET_NATS_PASSWORD')
    .option('--nats-ca <file>', "PEM CA that signed the NATS servers' certificates (TLS)", onceOption('--nats-ca'));
}

const USERINFO_HINT =
  'a user, password or token in the URL is not used by the NATS client: use --nats-user with L4FLEET_NATS_PASSWORD, or --nats-token-file (or L4FLEET_NATS_TOKEN)';

/**
 * `--nats a,b`: the server list, a URL with userinfo refused (masked): nats.js 2.29 ignores it, connecting without
 * login (an all-digit password dialled as the port), and the URL would be in every error.
 */
export function natsServers(text: string): string[] {
  // Refused whole, masked to its last '@', before the split (as --etcd, context.ts): a password may hold a ',', and
  // split first, the piece before it showed the password's part after an '@' in it (u:Xy9@a,Tq7@h showed "***@a").
  if (text.includes('@')) {
    throw new CliError(`--nats: ${JSON.stringify(maskUserinfo(text))}: ${USERINFO_HINT}`, EXIT_USAGE);
  }
  const servers = text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (servers.length === 0) throw new CliError(`--nats: no servers in ${JSON.stringify(text)}`, EXIT_USAGE);
  return servers;
}

/** The login of --nats-token-file / L4FLEET_NATS_TOKEN, --nats-user + L4FLEET_NATS_PASSWORD and --nats-ca. */
export function natsAuth(flags: NatsFlags): NonNullable<FollowEventsOptions['auth']> {
  let token: string | undefined;
  if (flags.natsTokenFile !== undefined) token = readSecretFlag('--nats-token-file', flags.natsTokenFile);
  else token = process.env.L4FLEET_NATS_TOKEN || undefined;
  const password = process.env.L4FLEET_NATS_PASSWORD || undefined;
  if (flags.natsUser !== undefined) {
    if (flags.natsUser.trim() === '')
      throw new CliError(`--nats-user: ${JSON.stringify(flags.natsUser)} is not a user name`, EXIT_USAGE);
    if (token !== undefined)
      throw new CliError(
        '--nats-user: a user and a token (--nats-token-file or L4FLEET_NATS_TOKEN) do not go together',
        EXIT_USAGE,
      );
    if (password === undefined)
      throw new CliError('--nats-user: needs the password in L4FLEET_NATS_PASSWORD', EXIT_USAGE);
  } else if (password !== undefined) {
    throw new CliError('L4FLEET_NATS_PASSWORD is set: it needs --nats-user', EXIT_USAGE);
  }
  // Checked as the agent checks nats.tls.ca: nats.js skips an empty `ca` and trusts Node's public roots instead.
  const ca = flags.natsCa !== undefined ? readPemFlag('--nats-ca', flags.natsCa, 'certificates').toString() : undefined;
  return {
    ...(token !== undefined ? { token } : {}),
    ...(flags.natsUser !== undefined && password !== undefined ? { user: flags.natsUser, password } : {}),
    ...(ca !== undefined ? { ca } : {}),
  };
}

interface EventsFlags extends NatsFlags {
  readonly nats: string;
  readonly fleet: string;
  readonly node?: string;
  readonly kind?: string;
  readonly subjectPrefix: string;
  readonly output: string;
  readonly count?: string;
  readonly timeoutMs?: string;
}

/** setTimeout()'s largest delay (2^31-1 ms, 24.8 days): it runs a larger one after 1 ms, so the command ended at once. */
const MAX_TIMEOUT_MS = 2_147_483_647;

function positive(v: string | undefined, flag: string, max = Number.MAX_SAFE_INTEGER): number | undefined {
  return v === undefined ? undefined : integerOption(v, flag, 1, max);
}

/**
 * `2026-01-01T00:00:00.000Z node1 vip.announced vip=198.51.100.10:80/tcp prefix=...`. An event is a publisher's
 * words: its control characters are shown as `\xNN` (printableText), so none retitles the terminal or starts a line.
 */
export function formatEventLine(ev: {
  at?: string;
  node?: string;
  kind?: string;
  data?: Record<string, unknown>;
}): string {
  const fields = Object.entries(ev.data ?? {})
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  return printableText(`${ev.at ?? '-'} ${ev.node ?? '-'} ${ev.kind ?? '-'} ${fields}`.trimEnd());
}

/** How much of a message that is not JSON a warning shows: enough to recognise it, not a whole payload. */
const EXCERPT_CHARS = 120;

/**
 * `-o json`: the message re-encoded on one line, so each line is one object for `jq` and line-oriented tools (NATS
 * hands over whatever was published: an agent's pretty-printed JSON, or another publisher's text on our subjects).
 * What is not a JSON object goes to stderr as a warning naming the subject; stdout stays parseable. True when printed.
 */
function jsonLine(io: CliIo, text: string, subject: string): boolean {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = undefined;
  }
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    io.out(JSON.stringify(value));
    return true;
  }
  const more = text.length > EXCERPT_CHARS ? `... (${text.length} chars)` : '';
  // For people (stderr): JSON.stringify keeps C1 (CSI 0x9b) raw.
  io.err(
    printableText(`warning: ${subject}: not JSON, skipped: ${JSON.stringify(text.slice(0, EXCERPT_CHARS))}${more}`),
  );
  return false;
}

/** A text line for people: an event as formatEventLine, anything else as `<subject> <text>` (escaped alike). */
function textLine(io: CliIo, text: string, subject: string): boolean {
  try {
    io.out(formatEventLine(JSON.parse(text) as Parameters<typeof formatEventLine>[0]));
  } catch {
    io.out(printableText(`${subject} ${text}`));
  }
  return true;
}

export function registerEvents(program: Command, io: CliIo): void {
  const command = program
    .command('events')
    .description(`follow agent events from NATS (${EVENT_KINDS.join(', ')})`)
    .option(
      '--nats <urls>',
      'NATS servers, comma-separated (env L4FLEET_NATS)',
      // An empty L4FLEET_NATS is unset (dashboard.env leaves it empty for no timeline): it was `--nats: no servers`.
      process.env.L4FLEET_NATS || 'nats://127.0.0.1:4222',
    )
    .option('--fleet <name>', 'fleet name', 'default')
    .option('--node <name>', 'only this node')
    .option('--kind <kind>', `only this kind: ${EVENT_KINDS.join(' | ')}`)
    .option('--subject-prefix <prefix>', 'first subject token', 'l4fleet')
    .option('-o, --output <format>', 'text | json (one JSON object per line)', 'text')
    .option('--count <n>', 'exit after n events printed (-o json: skipped messages do not count)')
    .option('--timeout-ms <ms>', 'exit after this long (status 0; at most 2147483647); Ctrl-C exits 130');
  addNatsLoginOptions(command).action(async (flags: EventsFlags) => {
    if (flags.output !== 'text' && flags.output !== 'json') {
      throw new CliError(`--output: ${JSON.stringify(flags.output)} is not text | json`, EXIT_USAGE);
    }
    if (flags.kind !== undefined && !(EVENT_KINDS as readonly string[]).includes(flags.kind)) {
      throw new CliError(`--kind: ${JSON.stringify(flags.kind)} is not one of ${EVENT_KINDS.join(' | ')}`, EXIT_USAGE);
    }
    let subject: string;
    try {
      subject = eventFilter(flags.subjectPrefix, flags.fleet, {
        ...(flags.kind ? { kind: flags.kind } : {}),
        ...(flags.node !== undefined ? { node: flags.node } : {}),
      });
    } catch (err) {
      // --fleet a.b, --node '>', --subject-prefix 'x y': checked before NATS is dialled.
      throw new CliError((err as Error).message, EXIT_USAGE, { cause: err });
    }
    const servers = natsServers(flags.nats);
    const count = positive(flags.count, '--count');
    const timeoutMs = positive(flags.timeoutMs, '--timeout-ms', MAX_TIMEOUT_MS);
    const auth = natsAuth(flags);
    const abort = new AbortController();
    const timer = timeoutMs ? setTimeout(() => abort.abort(), timeoutMs) : undefined;
    // Ctrl-C ends the follow with 130 (a shell's status for a command SIGINT ended), so a script tells it from the end
    // --count or --timeout-ms asked for (0); SIGTERM keeps Node's default, death by the signal (143).
    let interrupted = false;
    const onSigint = () => {
      interrupted = true;
      abort.abort();
    };
    process.once('SIGINT', onSigint);
    // `| head -1`: the reader has gone, so nothing more is printed; following on would only wait (exit 0, io.ts).
    const onClosed = () => abort.abort();
    io.closed?.addEventListener('abort', onClosed, { once: true });
    if (io.closed?.aborted) abort.abort();
    // --count counts the events printed, so no `max` for followEvents: that counts NATS messages, and one that
    // -o json skips used up `--count 1 -o json`, exiting 0 with nothing for `| jq`. The follow ends by the abort.
    let printed = 0;
    const print = flags.output === 'json' ? jsonLine : textLine;
    try {
      await followEvents({
        servers,
        auth,
        subject,
        signal: abort.signal,
        onMessage(text, subject) {
          // Messages nats.js had queued before the abort stopped the subscription are not printed.
          if (count !== undefined && printed >= count) return;
          if (!print(io, text, subject)) return;
          printed += 1;
          if (count !== undefined && printed >= count) abort.abort();
        },
      });
    } catch (err) {
      if (err instanceof AgentError) throw new CliError(err.message, EXIT_FAILURE, { cause: err });
      throw err;
    } finally {
      if (timer) clearTimeout(timer);
      process.removeListener('SIGINT', onSigint);
      io.closed?.removeEventListener('abort', onClosed);
    }
    if (interrupted) throw new CliError([], EXIT_SIGINT);
  });
}
