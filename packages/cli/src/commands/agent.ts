/**
 * `l4fleet agent --config agent.yaml`: runs the node agent in the foreground until SIGTERM or SIGINT, which drain
 * the node (RFC 8326 graceful shutdown, withdraw, keep forwarding a while) before exiting. A second signal exits at
 * once without draining. A signal while the agent starts begins the shutdown at once (runAgent's signal: the node
 * goes from starting straight to drained, announcing nothing), or exits (0) if the start has not settled within
 * START_STOP_WAIT_MS (waiting for etcd, say). SIGHUP (`systemctl reload`) reads the file
 * again: a change of bgp.peers (and bfd.peers and BFD's timers, logLevel, health.sourceAddress,
 * health.maxConcurrentProbes and health.caFile, also a CA rotated in place) is applied live, anything else is
 * refused, naming the fields, and the agent runs on unchanged (config/reload.ts in @l4fleet/agent); from the first
 * SIGTERM or SIGINT on, SIGHUP is ignored (the drain keeps its config). A node.name found held by another address
 * while serving drains the node the same way and exits 1. Flags override the file. `--check`
 * validates the config and what this host must offer (addresses, interface, files, the data plane's needs), prints
 * the effective config and exits: it never starts anything. Exit codes: 0 ok, 2 the config or the command line is wrong, 1 the host cannot run it.
 */
import { readFileSync } from 'node:fs';
import {
  AgentError,
  type ConfigOverrides,
  type HostFacts,
  loadAgentConfig,
  preflightProblems,
  preflightWarnings,
  readHealthCa,
  runAgent,
  systemHost,
} from '@l4fleet/agent';
import { formatProblem } from '@l4fleet/config';
import type { Command } from 'commander';
import pino, { type Logger } from 'pino';
import { markAgentCommand } from '../early-hangup.js';
import { CliError, type CliIo, EXIT_FAILURE, EXIT_USAGE } from '../io.js';
import { integerOption, onceOption } from '../options.js';

/** The largest 4-byte AS number (RFC 6793), as agent.yaml's bgp.asn. */
const MAX_ASN = 0xffff_ffff;

/** What the command uses from outside; tests replace the runner (nothing may start) and describe the host. */
export interface AgentCommandDeps {
  readonly runAgent?: typeof runAgent;
  readonly host?: HostFacts;
  /** Ends the process (a second signal, a start a signal gave up on); process.exit by default. */
  readonly exit?: (code: number) => void;
}

/** A signal while the agent starts waits this long for the start (then drains); past it the process exits, ms. */
export const START_STOP_WAIT_MS = 5_000;

interface AgentFlags {
  readonly config?: string;
  readonly nodeName?: string;
  readonly interface?: string;
  readonly address?: string;
  readonly asn?: string;
  readonly gobgpd?: string;
  readonly nats?: string;
  readonly metricsListen?: string;
  readonly dataplane?: string;
  readonly fleet?: string;
  readonly logLevel?: string;
  readonly check?: boolean;
}

/** The global connection flags given on the command line (not their defaults) also override the file. */
function overrides(flags: AgentFlags, cmd: Command): ConfigOverrides {
  const root = cmd.parent;
  const given = (name: string): string | undefined => {
    const src = root?.getOptionValueSource(name);
    return src === 'cli' || src === 'env' ? (root?.getOptionValue(name) as string) : undefined;
  };
  // Decimal digits only: Number() read '1e3', '0x10', '65001.0' and ' 7 ' as ASNs nobody typed.
  const asn = flags.asn === undefined ? undefined : integerOption(flags.asn, '--asn', 1, MAX_ASN);
  return {
    'node.name': flags.nodeName,
    'node.interface': flags.interface,
    'node.address': flags.address,
    'bgp.asn': asn,
    'bgp.gobgpdAddress': flags.gobgpd,
    'nats.servers': flags.nats,
    'metrics.listen': flags.metricsListen,
    'dataplane.driver': flags.dataplane,
    fleet: flags.fleet,
    logLevel: flags.logLevel,
    'etcd.endpoints': given('etcd'),
    'etcd.prefix': given('prefix'),
    'etcd.tls.ca': given('cacert'),
    'etcd.tls.cert': given('cert'),
    'etcd.tls.key': given('key'),
    'etcd.user': given('user'),
    'etcd.password': given('password'),
  };
}

/**
 * An option that takes a value takes the next word, whatever it is: `--node-name --check` made `--check` the node
 * name, and the agent started. Refused here, before the action: a value given on the command line may not be one
 * of the flags of this command or of the commands above it (`--check`, `-c`, `--prefix`, `--etcd=...`).
 */
function refuseFlagsAsValues(cmd: Command): void {
  const chain: Command[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) chain.push(c);
  const flags = chain.flatMap((c) => c.options.flatMap((o) => [o.long, o.short].filter((f) => f !== undefined)));
  const isFlag = (v: string) => flags.some((f) => v === f || v.startsWith(`${f}=`));
  for (const c of chain) {
    for (const o of c.options) {
      if (!o.required && !o.optional) continue;
      const key = o.attributeName();
      const value: unknown = c.getOptionValue(key);
      if (c.getOptionValueSource(key) !== 'cli' || typeof value !== 'string' || !isFlag(value)) continue;
      throw new CliError(`${o.long ?? o.short}: needs a value, got the option "${value}"`, EXIT_USAGE);
    }
  }
}

function agentVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    return pkg.version;
  } catch {
    return 'unknown';
  }
}

export function registerAgent(program: Command, io: CliIo, deps: AgentCommandDeps = {}): void {
  program
    .command('agent')
    .description(
      'run the node agent (health checks, tables, BGP, metrics, events) until SIGTERM; SIGHUP reloads agent.yaml (peers, BFD peers and timers, log level, health source/CA/concurrency; other changes refused)',
    )
    .option('-c, --config <file>', 'agent.yaml (flags override it)', onceOption('-c, --config'))
    .option('--node-name <name>', 'node name (node.name)')
    .option('--interface <ifname>', 'interface facing the router and backends (node.interface)')
    .option('--address <ipv4>', 'next hop announced for IPv4 VIPs (node.address)')
    .option('--asn <asn>', "this node's AS (bgp.asn)")
    .option('--gobgpd <address:port>', 'gobgpd gRPC API (bgp.gobgpdAddress)')
    .option('--nats <urls>', 'NATS servers, comma-separated (nats.servers)')
    .option('--metrics-listen <address:port>', '/metrics, /healthz, /readyz address (metrics.listen)')
    .option('--dataplane <driver>', 'nftables | bpf | proxy | dry-run (dataplane.driver)')
    .option('--fleet <name>', 'fleet name in NATS subjects (fleet)')
    .option('--log-level <level>', 'trace | debug | info | warn | error (logLevel)')
    .option('--check', 'validate the config and this host, print the config (passwords hidden) and exit')
    .hook('preAction', (_self, action) => refuseFlagsAsValues(action))
    .action(async (flags: AgentFlags, cmd: Command) => {
      markAgentCommand();
      // SIGHUP is handled from here to the end (Node's default for it is to exit): before the start, which reads
      // agent.yaml and can take a while (etcd, gobgpd), it is logged and ignored. Before and after this action,
      // bin.ts's hold (early-hangup.ts) keeps it ignored until the process ends.
      let logger: Logger | undefined;
      let running: Awaited<ReturnType<typeof runAgent>> | undefined;
      let unlogged = true;
      // From the first SIGTERM or SIGINT on: the drain (RFC 8326 graceful shutdown, the withdraw) runs on the config
      // it started with; a reload then would hand gobgpd new peers mid-drain, or reach the closed agent.
      let exiting = false;
      const onHangup = () => {
        if (exiting) {
          logger?.warn({ event: 'signal', signal: 'SIGHUP', action: 'ignored: the agent is exiting' });
          return;
        }
        if (running === undefined) {
          const event = { event: 'signal', signal: 'SIGHUP', action: 'ignored: the agent is still starting' };
          if (logger) logger.warn(event);
          // No logger before agent.yaml is read (its logLevel): one line as pino writes it, the first time.
          else if (unlogged) process.stdout.write(`${JSON.stringify({ level: 40, time: Date.now(), ...event })}\n`);
          unlogged = false;
          return;
        }
        if (reloading) {
          // The waiting reload reads the file when it starts, so it takes this change too: one is enough.
          const action = waiting ? 'merged into the reload waiting' : 'reload agent.yaml after the one running';
          logger?.info({ event: 'signal', signal: 'SIGHUP', action });
          waiting = true;
          return;
        }
        logger?.info({ event: 'signal', signal: 'SIGHUP', action: 'reload agent.yaml' });
        reload(running);
      };
      // A burst of SIGHUPs (a config tool reloading per file it writes) runs at most one reload and keeps one waiting.
      let reloading = false;
      let waiting = false;
      const reload = (r: NonNullable<typeof running>): void => {
        reloading = true;
        const next = () => {
          reloading = false;
          if (!waiting) return;
          waiting = false;
          if (exiting) logger?.warn({ event: 'signal', signal: 'SIGHUP', action: 'ignored: the agent is exiting' });
          else reload(r);
        };
        // The agent logs, counts and publishes each outcome.
        void r.agent.reload(() => loadAgentConfig(flags.config, overrides(flags, cmd))).then(next, next);
      };
      process.on('SIGHUP', onHangup);
      try {
        await runAgentCommand(flags, cmd, {
          logger: (l) => (logger = l),
          running: (r) => (running = r),
          exiting: () => (exiting = true),
        });
      } finally {
        process.off('SIGHUP', onHangup);
      }
    });

  /** The command past the SIGHUP handler: `--check`, or the start and the run until a signal. */
  async function runAgentCommand(
    flags: AgentFlags,
    cmd: Command,
    hangup: { logger(l: Logger): void; running(r: Awaited<ReturnType<typeof runAgent>>): void; exiting(): void },
  ): Promise<void> {
    let config: Awaited<ReturnType<typeof loadAgentConfig>>;
    try {
      config = await loadAgentConfig(flags.config, overrides(flags, cmd));
    } catch (err) {
      if (err instanceof AgentError) {
        const lines = err.problems.length > 0 ? err.problems.map(formatProblem) : [err.message];
        throw new CliError(lines, err.code === 'CONFIG_UNREADABLE' ? EXIT_FAILURE : EXIT_USAGE, { cause: err });
      }
      throw err;
    }
    if (flags.check) {
      const host = deps.host ?? systemHost();
      const problems = preflightProblems(config, host);
      if (problems.length > 0) throw new CliError(problems.map(formatProblem), EXIT_FAILURE);
      for (const w of preflightWarnings(config, host)) io.err(`warning: ${formatProblem(w)}`);
      // What the start reads of health.caFile, checked the same way (a readable file holding no certificate).
      if (config.health.caFile !== undefined) {
        try {
          readHealthCa(config.health.caFile);
        } catch (err) {
          if (!(err instanceof AgentError)) throw err;
          throw new CliError(err.problems.map(formatProblem), EXIT_FAILURE, { cause: err });
        }
      }
      const shown = JSON.parse(
        JSON.stringify(config, (k, v) => (k === 'password' || k === 'token' ? '<hidden>' : v)),
      ) as unknown;
      io.out(JSON.stringify(shown, null, 2));
      return;
    }
    const logger = pino({ level: config.logLevel, base: { node: config.node.name } });
    hangup.logger(logger);
    const exit = deps.exit ?? ((code: number) => process.exit(code));
    // SIGTERM and SIGINT are handled from before the start (Node's default would kill a half-started agent, and the
    // start can wait long for etcd): one while starting aborts `starting`, so runAgent begins the shutdown at once
    // (told only once the start was done, the node had served and announced without the graceful-shutdown
    // community, then drained), and exits after START_STOP_WAIT_MS if the start has not settled; a second one exits
    // at once.
    const starting = new AbortController();
    let agent: Awaited<ReturnType<typeof runAgent>> | undefined;
    let signals = 0;
    let startWait: ReturnType<typeof setTimeout> | undefined;
    let finished: () => void = () => undefined;
    const done = new Promise<void>((resolve) => (finished = resolve));
    // A shutdown or close that failed: the command fails (1) once done, so systemd and the operator see a failed stop.
    let failed: { what: string; err: unknown } | undefined;
    const fail = (what: string, event: string, err: unknown): void => {
      logger.error({ event, err });
      process.exitCode = EXIT_FAILURE; // also for the fallback exit below
      failed ??= { what, err };
      finished();
    };
    const drain = (a: NonNullable<typeof agent>): void => {
      void a.shutdown().then(finished, (err: unknown) => fail('shutdown', 'shutdownFailed', err));
    };
    const onSignal = (sig: NodeJS.Signals) => {
      signals += 1;
      hangup.exiting();
      if (signals > 1) {
        logger.warn({ event: 'signal', signal: sig, action: 'exit now' });
        if (agent) void agent.close().then(finished, (err: unknown) => fail('close', 'closeFailed', err));
        else exit(0);
        return;
      }
      if (agent) {
        logger.info({ event: 'signal', signal: sig, action: 'drain and exit' });
        drain(agent);
        return;
      }
      logger.info({ event: 'signal', signal: sig, action: 'shut down while starting', waitMs: START_STOP_WAIT_MS });
      starting.abort();
      startWait = setTimeout(() => {
        logger.warn({ event: 'startAbandoned', signal: sig, waitedMs: START_STOP_WAIT_MS });
        exit(0);
      }, START_STOP_WAIT_MS);
      startWait.unref();
    };
    // The node's name turned out another node's while it served: runAgent began the drain; exit 1 once it is done
    // (systemd's Restart=on-failure starts it again, refused and unrouted until the name is free).
    let taken: Error | undefined;
    const nameTaken = (err: Error): void => {
      if (taken) return;
      taken = err;
      process.exitCode = EXIT_FAILURE; // also for the fallback exit below
      logger.error({ event: 'exiting', reason: 'nodeNameTaken', code: EXIT_FAILURE, err: err.message });
      hangup.exiting();
      if (agent && signals === 0) drain(agent);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    try {
      try {
        agent = await (deps.runAgent ?? runAgent)(config, {
          logger,
          version: agentVersion(),
          signal: starting.signal,
          onNameTaken: nameTaken,
        });
      } catch (err) {
        throw new CliError(`agent: ${(err as Error).message}`, EXIT_FAILURE, { cause: err });
      } finally {
        clearTimeout(startWait);
      }
      // From here SIGHUP reloads: the agent logs and counts each outcome; the same flags override the file.
      hangup.running(agent);
      logger.info({ event: 'agentRunning', metrics: agent.metricsAddress });
      if (signals > 0 || taken) {
        // The shutdown runAgent began when signalled; shutdown() waits for it, then closes the rest.
        logger.info({ event: 'signal', action: 'finish the shutdown begun while starting' });
        drain(agent);
      }
      await done;
    } finally {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
    }
    // Everything is closed; should a client library still hold a handle, do not hang the node's shutdown on it.
    setTimeout(() => exit(Number(process.exitCode ?? 0)), 3_000).unref();
    if (taken) throw new CliError(`agent: ${taken.message}`, EXIT_FAILURE, { cause: taken });
    if (failed) {
      const why = failed.err instanceof Error ? failed.err.message : String(failed.err);
      throw new CliError(`agent: ${failed.what} failed: ${why}`, EXIT_FAILURE, { cause: failed.err });
    }
  }
}
