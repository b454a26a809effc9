/**
 * `l4fleet dashboard`: the live web page over etcd (the global connection flags), the agents' NATS events and
 * their /metrics, until SIGTERM or SIGINT. Prints the URL on stdout once it listens. Writes need a token from
 * --token-file or L4FLEET_DASHBOARD_TOKEN (never a flag value: it would show in `ps`); without one, read-only.
 */
import { eventFilter } from '@l4fleet/agent';
import { ConfigError, formatProblem, LOG_LEVELS, logLevelNamed, parseListenAddress } from '@l4fleet/config';
import {
  DashboardError,
  DEFAULT_LISTEN,
  labFlowsSubject,
  parseMetricsTargets,
  startDashboard,
} from '@l4fleet/dashboard';
import { type Command, Option } from 'commander';
import pino from 'pino';
import { readSecretFlag } from '../flag-files.js';
import { CliError, EXIT_FAILURE, EXIT_USAGE } from '../io.js';
import { onceOption } from '../options.js';
import { asCliError, type ConnectionFlags, type FleetCommandContext } from './context.js';
import { addNatsLoginOptions, type NatsFlags, natsAuth, natsServers } from './events.js';

interface DashboardFlags extends NatsFlags {
  readonly listen: string;
  readonly tokenFile?: string;
  readonly nats?: string;
  readonly fleet: string;
  readonly subjectPrefix: string;
  readonly agentMetrics?: string;
  readonly logLevel: string;
}

/**
 * The write token: --token-file (an empty or blank file refused, as --nats-token-file: it is a failed provisioning, not
 * a read-only choice), else L4FLEET_DASHBOARD_TOKEN, where an empty value is the documented read-only switch.
 */
function readToken(flags: DashboardFlags): string | undefined {
  if (flags.tokenFile === undefined) return process.env.L4FLEET_DASHBOARD_TOKEN || undefined;
  return readSecretFlag('--token-file', flags.tokenFile);
}

export function registerDashboard(program: Command, ctx: FleetCommandContext): void {
  const command = program
    .command('dashboard')
    .description('serve the live fleet page (nodes, VIPs, members, charts, events, explain, drains) until SIGTERM')
    .option('--listen <address:port>', 'address to serve on (loopback unless told otherwise)', DEFAULT_LISTEN)
    .option(
      '--token-file <file>',
      'bearer token for writes (or env L4FLEET_DASHBOARD_TOKEN); none: read-only',
      onceOption('--token-file'),
    )
    .addOption(new Option('--nats <urls>', 'NATS servers for the event timeline, comma-separated').env('L4FLEET_NATS'))
    .option('--fleet <name>', 'fleet name in NATS subjects', 'default')
    .option('--subject-prefix <prefix>', 'first NATS subject token', 'l4fleet')
    .option('--agent-metrics <list>', "agents' /metrics: NODE=http://HOST:PORT[,NODE=...]")
    .option('--log-level <level>', `${LOG_LEVELS.join(' | ')} (logs go to stderr)`, 'info');
  addNatsLoginOptions(command).action(async (flags: DashboardFlags, cmd: Command) => {
    let metricsTargets: Map<string, string>;
    try {
      metricsTargets = parseMetricsTargets(flags.agentMetrics);
    } catch (err) {
      throw new CliError(`--${(err as Error).message}`, EXIT_USAGE, { cause: err });
    }
    // --listen before anything opens, named as typed: startDashboard's own check names its option `listen`.
    try {
      parseListenAddress(flags.listen, '--listen');
    } catch (err) {
      throw new CliError((err as Error).message, EXIT_USAGE, { cause: err });
    }
    // The level before anything opens: pino handed an unknown one failed after the store opened, in its own words
    // ("default level:bogus must be included in custom levels"), exit 1, the flag never named.
    let level: string;
    try {
      level = logLevelNamed(flags.logLevel, '--log-level');
    } catch (err) {
      if (err instanceof ConfigError) throw new CliError(err.problems.map(formatProblem), EXIT_USAGE, { cause: err });
      throw err;
    }
    // The subjects before anything opens: a bad --fleet or --subject-prefix is a usage error naming the flag.
    let subject: string;
    try {
      subject = eventFilter(flags.subjectPrefix, flags.fleet);
    } catch (err) {
      throw new CliError((err as Error).message, EXIT_USAGE, { cause: err });
    }
    // --nats (a URL with userinfo refused) and its login, before anything opens; no --nats: no timeline.
    const servers = flags.nats?.trim() ? natsServers(flags.nats) : [];
    const auth = servers.length ? natsAuth(flags) : {};
    const token = readToken(flags);
    const store = ctx.openStore(cmd.optsWithGlobals() as ConnectionFlags);
    const logger = pino({ level }, pino.destination(2));
    let dashboard: Awaited<ReturnType<typeof startDashboard>>;
    try {
      dashboard = await startDashboard({
        store,
        logger,
        listen: flags.listen,
        ...(token ? { token } : {}),
        ...(servers.length
          ? {
              nats: {
                servers,
                subject,
                flowsSubject: labFlowsSubject(flags.subjectPrefix, flags.fleet),
                ...(Object.keys(auth).length ? { auth } : {}),
              },
            }
          : {}),
        metricsTargets,
      });
    } catch (err) {
      await store.close().catch(() => undefined);
      if (err instanceof DashboardError) {
        throw new CliError(err.message, err.code === 'OPTION_INVALID' ? EXIT_USAGE : EXIT_FAILURE, { cause: err });
      }
      throw asCliError(err);
    }
    ctx.io.out(dashboard.url);
    await new Promise<void>((resolve) => {
      const onSignal = () => resolve();
      process.once('SIGTERM', onSignal);
      process.once('SIGINT', onSignal);
    });
    await dashboard.close();
    await store.close().catch(() => undefined);
  });
}
