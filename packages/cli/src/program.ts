/** Builds the `l4fleet` command tree. Each command group lives in commands/ and registers itself here. */
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { type AgentCommandDeps, registerAgent } from './commands/agent.js';
import { registerBackend } from './commands/backend.js';
import { type OpenStore, openEtcdStore } from './commands/context.js';
import { registerDashboard } from './commands/dashboard.js';
import { registerEvents } from './commands/events.js';
import { registerFleetCommands } from './commands/fleet.js';
import { registerLab, runLab } from './commands/lab.js';
import { registerMaglev } from './commands/maglev.js';
import { releaseEarlyHangup } from './early-hangup.js';
import { CliError, type CliIo, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, processIo } from './io.js';

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** What runCli needs from outside; tests pass a store opener of their own. */
export interface CliDeps {
  readonly openStore?: OpenStore;
  /** `l4fleet agent`'s runner and host (tests: a runner that records instead of starting an agent). */
  readonly agent?: AgentCommandDeps;
}

export function createProgram(io: CliIo = processIo, deps: CliDeps = {}): Command {
  const program = new Command('l4fleet')
    .description('Fleet controller for clustered ECMP/anycast L4 load balancers')
    .version(version(), '-V, --version')
    .showHelpAfterError()
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) })
    .exitOverride()
    // bin.ts held SIGHUP for a command line with the word `agent` in it; any command but the node agent gets
    // Node's default back (a dashboard or events follow ends with its terminal).
    .hook('preAction', (_self, action) => {
      if (action.name() !== 'agent' || action.parent !== program) releaseEarlyHangup();
    });
  registerMaglev(program, io);
  registerFleetCommands(program, { io, openStore: deps.openStore ?? openEtcdStore });
  registerDashboard(program, { io, openStore: deps.openStore ?? openEtcdStore });
  registerLab(program);
  registerAgent(program, io, deps.agent);
  registerBackend(program, io);
  registerEvents(program, io);
  addHelpCommands(program);
  return program;
}

/**
 * Commander's built-in `help NAME` printed only the usage for a NAME it does not know (exit 2), never saying what was
 * wrong, while `l4fleet nosuch` says "unknown command". Each group that had the built-in one gets a `help` command of
 * its own instead: `help [command...]` walks down the names given; an unknown one is named first, then that group's
 * usage (showHelpAfterError), exit 2 as any usage error. Words after a command without subcommands are its arguments
 * (`help get nodes` is get's help, as commander's built-in one gave).
 */
function addHelpCommands(group: Command): void {
  for (const sub of group.commands) addHelpCommands(sub);
  // The built-in one is listed by the Help class without being one of group.commands (only groups without an action).
  const builtIn = group
    .createHelp()
    .visibleCommands(group)
    .some((c) => c.name() === 'help' && !group.commands.includes(c));
  if (!builtIn) return;
  group.helpCommand(false);
  group
    .command('help')
    .description('display help for command')
    .argument('[command...]', 'a command, then its subcommands')
    .action((names: string[]) => {
      let target: Command = group;
      for (const name of names) {
        // A command without subcommands takes the words after it as its arguments (`help get nodes`: get's help).
        if (target !== group && target.commands.length === 0) break;
        const next = target.commands.find((c) => c.name() === name || c.aliases().includes(name));
        if (next === undefined)
          return target.error(`error: unknown command '${name}'`, { code: 'commander.unknownCommand' });
        target = next;
      }
      target.help();
    });
}

/** Runs the CLI on `argv` (without node and script) and returns the exit code; never calls process.exit. */
export async function runCli(argv: readonly string[], io: CliIo = processIo, deps: CliDeps = {}): Promise<number> {
  const program = createProgram(io, deps);
  try {
    // `lab` hands its whole argument list to l4fleet-lab untouched (its options are its own).
    if (argv[0] === 'lab') {
      releaseEarlyHangup();
      const code = await runLab(argv.slice(1));
      // l4fleet-lab printed its own error (its stderr is ours); a second line would only repeat the exit status.
      if (code !== 0) throw new CliError([], code);
      return EXIT_OK;
    }
    await program.parseAsync([...argv], { from: 'user' });
    return EXIT_OK;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.exitCode === 0) {
        return EXIT_OK;
      }
      return EXIT_USAGE;
    }
    if (err instanceof CliError) {
      for (const p of err.problems) io.err(`error: ${p}`);
      return err.exitCode;
    }
    io.err(`error: ${err instanceof Error ? err.message : String(err)}`);
    return EXIT_FAILURE;
  }
}
