/**
 * `l4fleet backend setup | teardown | status`: makes this host a backend for pools with `forwarding: gue | ipip |
 * gre` without tunnel modules (a tc program removes the fleet's encapsulation), undoes it, and shows its counters.
 * See packages/dataplane/README.md "Backend hosts". `backend agent | state`: backend-agent.ts.
 */
import {
  type BackendHostDeps,
  type BackendSetupReport,
  backendStatus,
  createExec,
  DataPlaneError,
  DEFAULT_BPFFS_DIR,
  DEFAULT_GUE_PORT,
  DEFAULT_STATE_DIR,
  FORWARDING_MODES,
  formatCounters,
  setupBackend,
  teardownBackend,
} from '@l4fleet/dataplane';
import type { Command } from 'commander';
import { CliError, type CliIo, EXIT_FAILURE, EXIT_USAGE } from '../io.js';
import { onceOption } from '../options.js';
import { registerBackendAgent } from './backend-agent.js';

/** As commander gives them: the directories' defaults are applied by hostDirs. */
interface HostFlags {
  readonly bpffs?: string;
  readonly stateDir?: string;
  readonly object?: string;
  readonly output: string;
}

interface SetupFlags extends HostFlags {
  readonly vip?: string[];
  readonly forwarding?: string[];
  readonly nodes?: string[];
  readonly guePort?: string;
  readonly interface?: string;
  readonly peers?: string[];
  /** commander's --no-second-chance */
  readonly secondChance?: boolean;
}

function deps(flags: HostFlags): BackendHostDeps {
  return {
    exec: createExec(),
    bpffs: flags.bpffs ?? DEFAULT_BPFFS_DIR,
    stateDir: flags.stateDir ?? DEFAULT_STATE_DIR,
    ...(flags.object === undefined ? {} : { objectPath: flags.object }),
  };
}

function rethrow(err: unknown): never {
  if (err instanceof DataPlaneError) {
    throw new CliError(err.message.split('\n'), err.code === 'OPTIONS_INVALID' ? EXIT_USAGE : EXIT_FAILURE, {
      cause: err,
    });
  }
  throw err;
}

/**
 * setup's text report. Its warnings (a previous program generation it could not prune) go to stderr: setup itself
 * succeeded, but the operator should know what was left behind (the next setup tries again).
 */
export function printSetup(report: BackendSetupReport, io: CliIo): void {
  io.out(`backend: set up on ${report.interface} (program ${report.progId}, pins ${report.pinDir})`);
  if (report.changes.length === 0) io.out('  no changes: already set up as asked');
  for (const c of report.changes) io.out(`  ${c.what.padEnd(8)} ${c.detail}`);
  for (const w of report.warnings) io.err(`warning: ${w}`);
}

function output(value: string): 'text' | 'json' {
  if (value !== 'text' && value !== 'json') {
    throw new CliError(`--output ${JSON.stringify(value)}: not one of text | json`, EXIT_USAGE);
  }
  return value;
}

/**
 * The options setup, teardown and status share. --bpffs and --state-dir are refused when given twice (onceOption;
 * commander kept the last, silently), so their defaults are applied in deps(), not by commander: a commander default
 * reaches the parser as a previous value, as a first --bpffs.
 */
function hostOptions(cmd: Command): Command {
  return cmd
    .option(
      '--bpffs <dir>',
      `mounted bpf file system for the pins (default: ${JSON.stringify(DEFAULT_BPFFS_DIR)})`,
      onceOption('--bpffs'),
    )
    .option(
      '--state-dir <dir>',
      `where the record of the setup is kept (teardown reads it) (default: ${JSON.stringify(DEFAULT_STATE_DIR)})`,
      onceOption('--state-dir'),
    )
    .option('-o, --output <format>', 'text | json', 'text');
}

export function registerBackend(program: Command, io: CliIo): void {
  const backend = program
    .command('backend')
    .description(
      'configure this host as a backend: decapsulation for encapsulated forwarding (gue | ipip | gre), the agent check',
    );
  registerBackendAgent(backend, io);

  hostOptions(
    backend
      .command('setup')
      .description("decapsulate the fleet nodes' packets at tc ingress, VIPs on lo, ARP and rp_filter settings")
      .option('--vip <addr...>', 'the VIP addresses this backend serves (IPv4 and/or IPv6)')
      .option('--forwarding <mode...>', `encapsulation the nodes use: ${FORWARDING_MODES.join(' | ')}`)
      .option('--nodes <addr...>', "addresses of the fleet's nodes (outer sources allowed; all others dropped)")
      .option(
        '--gue-port <port>',
        `UDP destination port of gue (default ${DEFAULT_GUE_PORT})`,
        onceOption('--gue-port'),
      )
      .option(
        '--interface <ifname>',
        'interface facing the nodes (default: that of the default route)',
        onceOption('--interface'),
      )
      .option(
        '--peers <addr...>',
        "the other backends' addresses (second chance: they forward flows they do not own here)",
      )
      .option('--no-second-chance', 'never forward a packet to the previous owner the node named (decapsulate it here)')
      .option(
        '--object <file>',
        'compiled backend.bpf.o (default: the one built with @l4fleet/dataplane)',
        onceOption('--object'),
      ),
  ).action(async (flags: SetupFlags) => {
    const format = output(flags.output);
    const report = await setupBackend(
      {
        ...(flags.vip === undefined ? {} : { vips: flags.vip }),
        ...(flags.forwarding === undefined ? {} : { forwarding: flags.forwarding.flatMap((f) => f.split(',')) }),
        ...(flags.nodes === undefined ? {} : { nodes: flags.nodes }),
        ...(flags.guePort === undefined ? {} : { guePort: flags.guePort }),
        ...(flags.interface === undefined ? {} : { interface: flags.interface }),
        ...(flags.peers === undefined ? {} : { peers: flags.peers }),
        ...(flags.secondChance === false ? { secondChance: false } : {}),
      },
      deps(flags),
    ).catch(rethrow);
    if (format === 'json') {
      io.out(JSON.stringify(report, null, 2));
      return;
    }
    printSetup(report, io);
  });

  hostOptions(
    backend
      .command('teardown')
      .description('undo exactly what setup changed (sysctls, VIPs on lo, tc filter and qdisc, pins)'),
  ).action(async (flags: HostFlags) => {
    const format = output(flags.output);
    const report = await teardownBackend(deps(flags)).catch(rethrow);
    if (format === 'json') {
      io.out(JSON.stringify(report, null, 2));
      return;
    }
    if (!report.wasSetUp) {
      io.out(`backend: nothing to tear down (no record at ${report.recordPath})`);
      return;
    }
    io.out('backend: torn down');
    for (const c of report.changes) io.out(`  ${c.what.padEnd(8)} ${c.detail}`);
    for (const l of report.leftAlone) io.out(`  left alone: ${l}`);
  });

  hostOptions(backend.command('status').description('the setup and its counters (packets, bytes)')).action(
    async (flags: HostFlags) => {
      const format = output(flags.output);
      const status = await backendStatus(deps(flags)).catch(rethrow);
      if (format === 'json') {
        io.out(JSON.stringify(status, null, 2));
        return;
      }
      const r = status.record;
      io.out(
        `backend: ${r.interface}, ${r.forwarding.join(',')}${r.forwarding.includes('gue') ? ` port ${r.guePort}` : ''}, ` +
          `filter ${status.attached ? `attached (program ${status.progId})` : 'NOT attached'}`,
      );
      io.out(`  vips:  ${r.vips.join(' ')}`);
      io.out(`  nodes: ${r.nodes.join(' ')}`);
      io.out(`  peers: ${(r.peers ?? []).join(' ') || '-'} (second chance ${r.secondChance === false ? 'off' : 'on'})`);
      for (const line of formatCounters(status.counters)) io.out(line);
    },
  );
}
