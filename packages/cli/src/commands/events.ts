/**
 * `l4fleet events`: follows the agents' NATS events (subjects `<prefix>.<fleet>.<kind>.<node>`, see
 * docs/design/0006-agent.md), as text lines for people or JSON lines for scripts, until interrupted or `--count`.
 */
import { AgentError, EVENT_KINDS, eventFilter, followEvents } from '@l4fleet/agent';
import type { Command } from 'commander';
import { CliError, type CliIo, EXIT_FAILURE, EXIT_USAGE } from '../io.js';
import { integerOption } from '../options.js';

interface EventsFlags {
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

/** `2026-01-01T00:00:00.000Z node1 vip.announced vip=198.51.100.10:80/tcp prefix=...`. */
export function formatEventLine(ev: {
  at?: string;
  node?: string;
  kind?: string;
  data?: Record<string, unknown>;
}): string {
  const fields = Object.entries(ev.data ?? {})
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  return `${ev.at ?? '-'} ${ev.node ?? '-'} ${ev.kind ?? '-'} ${fields}`.trimEnd();
}

export function registerEvents(program: Command, io: CliIo): void {
  program
    .command('events')
    .description(`follow agent events from NATS (${EVENT_KINDS.join(', ')})`)
    .option(
      '--nats <urls>',
      'NATS servers, comma-separated (env L4FLEET_NATS)',
      process.env.L4FLEET_NATS ?? 'nats://127.0.0.1:4222',
    )
    .option('--fleet <name>', 'fleet name', 'default')
    .option('--node <name>', 'only this node')
    .option('--kind <kind>', `only this kind: ${EVENT_KINDS.join(' | ')}`)
    .option('--subject-prefix <prefix>', 'first subject token', 'l4fleet')
    .option('-o, --output <format>', 'text | json (one JSON object per line)', 'text')
    .option('--count <n>', 'exit after n events')
    .option('--timeout-ms <ms>', 'exit after this long (status 0; at most 2147483647)')
    .action(async (flags: EventsFlags) => {
      if (flags.output !== 'text' && flags.output !== 'json') {
        throw new CliError(`--output: ${JSON.stringify(flags.output)} is not text | json`, EXIT_USAGE);
      }
      if (flags.kind !== undefined && !(EVENT_KINDS as readonly string[]).includes(flags.kind)) {
        throw new CliError(
          `--kind: ${JSON.stringify(flags.kind)} is not one of ${EVENT_KINDS.join(' | ')}`,
          EXIT_USAGE,
        );
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
      const count = positive(flags.count, '--count');
      const timeoutMs = positive(flags.timeoutMs, '--timeout-ms', MAX_TIMEOUT_MS);
      const abort = new AbortController();
      const timer = timeoutMs ? setTimeout(() => abort.abort(), timeoutMs) : undefined;
      const onSigint = () => abort.abort();
      process.once('SIGINT', onSigint);
      try {
        await followEvents({
          servers: flags.nats
            .split(',')
            .map((s) => s.trim())
            .filter(Boolean),
          subject,
          ...(count ? { max: count } : {}),
          signal: abort.signal,
          onMessage(text, subject) {
            if (flags.output === 'json') return io.out(text);
            try {
              io.out(formatEventLine(JSON.parse(text) as Parameters<typeof formatEventLine>[0]));
            } catch {
              io.out(`${subject} ${text}`);
            }
          },
        });
      } catch (err) {
        if (err instanceof AgentError) throw new CliError(err.message, EXIT_FAILURE, { cause: err });
        throw err;
      } finally {
        if (timer) clearTimeout(timer);
        process.removeListener('SIGINT', onSigint);
      }
    });
}
