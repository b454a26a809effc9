/**
 * `l4fleet backend agent` and `l4fleet backend state`: the backend side of the fleet's `agent` health check (HAProxy's
 * agent-check). `state drain --reason TEXT` takes this backend out of new flows on every node at their next probes
 * (its open flows stay, with the pool's default `onMemberDown: keep`), `state ready` puts it back; `agent` answers
 * the nodes. No etcd credentials on the backend: the nodes ask it. See docs/backend-host.md "The agent check".
 */
import type { Command } from 'commander';
import pino from 'pino';
import { DEFAULT_AGENT_LISTEN, startResponder } from '../backend-agent/responder.js';
import {
  BACKEND_STATES,
  type BackendState,
  BackendStateError,
  backendState,
  DEFAULT_BACKEND_STATE_FILE,
  readStateFile,
  stateLine,
  writeStateFile,
} from '../backend-agent/state-file.js';
import { releaseEarlyHangup } from '../early-hangup.js';
import { CliError, type CliIo, EXIT_FAILURE, EXIT_USAGE } from '../io.js';
import { onceOption } from '../options.js';

interface StateFlags {
  readonly stateFile?: string;
  readonly reason?: string;
  readonly output: string;
}

interface AgentFlags {
  readonly stateFile?: string;
  readonly listen: string[];
}

const asCliError = (err: unknown, code: number): never => {
  if (err instanceof BackendStateError) throw new CliError(err.message, code, { cause: err });
  throw err;
};

/**
 * --state-file, refused when given twice (onceOption; commander kept the last, silently). Its default is applied in
 * the action, not by commander: a commander default reaches the parser as a previous value, as a first --state-file.
 */
function stateFileOption(description: string): [string, string, (value: string, previous?: string) => string] {
  return [
    '--state-file <file>',
    `${description} (default: ${JSON.stringify(DEFAULT_BACKEND_STATE_FILE)})`,
    onceOption('--state-file'),
  ];
}

/** The state a new one replaces, or why the file held none (unreadable, not a state, oversized). */
async function previousState(file: string): Promise<BackendState | { readonly invalid: string }> {
  try {
    return await readStateFile(file);
  } catch (err) {
    if (err instanceof BackendStateError) return { invalid: err.message };
    throw err;
  }
}

export function registerBackendAgent(backend: Command, io: CliIo): void {
  backend
    .command('state')
    .description(`show or set what this backend's agent tells the fleet's agent checks (${BACKEND_STATES.join(' | ')})`)
    .argument('[state]', 'the new state; none: show the current one')
    .option('--reason <text>', 'why, shown in every node\'s reason ("agent says drain: TEXT")')
    .option(...stateFileOption('the state file the agent answers'))
    .option('-o, --output <format>', 'text | json', 'text')
    .action(async (word: string | undefined, given: StateFlags) => {
      const flags = { ...given, stateFile: given.stateFile ?? DEFAULT_BACKEND_STATE_FILE };
      if (flags.output !== 'text' && flags.output !== 'json') {
        throw new CliError(`--output ${JSON.stringify(flags.output)}: not one of text | json`, EXIT_USAGE);
      }
      if (word === undefined && flags.reason !== undefined) {
        throw new CliError('--reason needs a state to go with it (e.g. backend state drain --reason TEXT)', EXIT_USAGE);
      }
      if (word === undefined) {
        const now = await readStateFile(flags.stateFile).catch((err) => asCliError(err, EXIT_FAILURE));
        io.out(
          flags.output === 'json'
            ? JSON.stringify({ stateFile: flags.stateFile, state: now.word, reason: now.reason ?? null })
            : `${stateLine(now)} (${flags.stateFile})`,
        );
        return;
      }
      const after = (() => {
        try {
          return backendState(word, flags.reason, 'state');
        } catch (err) {
          return asCliError(err, EXIT_USAGE);
        }
      })();
      // Setting replaces whatever is there: a bad file is what `state ready` is for (docs/backend-host.md).
      const before = await previousState(flags.stateFile);
      await writeStateFile(flags.stateFile, after).catch((err) => asCliError(err, EXIT_FAILURE));
      const previous = 'invalid' in before ? `previous: invalid (${before.invalid})` : stateLine(before);
      if (flags.output === 'json') {
        io.out(
          JSON.stringify({
            stateFile: flags.stateFile,
            state: after.word,
            reason: after.reason ?? null,
            previous: 'invalid' in before ? null : previous,
            ...('invalid' in before ? { previousInvalid: before.invalid } : {}),
          }),
        );
        return;
      }
      io.out(`${previous} -> ${stateLine(after)} (${flags.stateFile}; the nodes see it at their next probes)`);
    });

  backend
    .command('agent')
    .description("answer the fleet's agent health checks with this backend's state file, until SIGTERM")
    .option(
      '--listen <addr...>',
      `ADDR:PORT or [IPv6]:PORT to listen on (the pool's agent check port; the default is every IPv4 and IPv6 address)`,
      [DEFAULT_AGENT_LISTEN],
    )
    .option(...stateFileOption('the state file to answer'))
    .action(async (given: AgentFlags) => {
      const flags = { ...given, stateFile: given.stateFile ?? DEFAULT_BACKEND_STATE_FILE };
      // bin.ts holds SIGHUP for any command line with `agent` in it (the node agent's reload); this one has none.
      releaseEarlyHangup();
      const logger = pino({ base: { component: 'backend-agent' } });
      const responder = await startResponder({ listen: flags.listen, stateFile: flags.stateFile, logger }).catch(
        (err: unknown) => {
          const code = (err as Error).message.startsWith('--listen') ? EXIT_USAGE : EXIT_FAILURE;
          throw new CliError(`backend agent: ${(err as Error).message}`, code, { cause: err });
        },
      );
      io.out(
        `backend agent: listening on ${responder.addresses.join(' ')}, answering ${stateLine(responder.state())} from ${flags.stateFile}`,
      );
      await new Promise<void>((resolve) => {
        const stop = (sig: NodeJS.Signals) => {
          logger.info({ event: 'signal', signal: sig, action: 'exit' });
          void responder.close().finally(resolve);
        };
        process.once('SIGTERM', stop);
        process.once('SIGINT', stop);
      });
    });
}
