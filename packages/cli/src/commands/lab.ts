/**
 * `l4fleet lab ...` runs the lab's own command, `l4fleet-lab` (workspace `@l4fleet/lab`), with the same arguments.
 * The CLI does not import the lab: lab/ builds on the packages, never the other way round (docs/design/0001).
 * It is resolved like a git subcommand: the installed workspace package first, then PATH.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { constants } from 'node:os';
import { dirname, join } from 'node:path';
import type { Command } from 'commander';
import { CliError } from '../io.js';

/** The command line that runs `l4fleet-lab`: node + its bin script when installed, else the name on PATH. */
export function labCommand(): { file: string; args: string[] } {
  try {
    const pkgPath = createRequire(import.meta.url).resolve('@l4fleet/lab/package.json');
    const pkg = JSON.parse(readFileSync(pkgPath, 'utf8')) as { bin?: Record<string, string> };
    const bin = pkg.bin?.['l4fleet-lab'];
    if (bin && existsSync(join(dirname(pkgPath), bin))) {
      return { file: process.execPath, args: [join(dirname(pkgPath), bin)] };
    }
  } catch {
    // not installed as a workspace package: fall back to PATH
  }
  return { file: 'l4fleet-lab', args: [] };
}

/**
 * The signals `l4fleet` passes on to l4fleet-lab: a stop (systemd, `kill`, Ctrl-C, a hangup) is the lab command's.
 * Always, also when the same signal reached l4fleet-lab already (a terminal's Ctrl-C or hangup, `timeout`, a signal
 * to the process group): l4fleet-lab takes a copy that soon after for the one signal (REPEAT_SIGNAL_WINDOW_MS in
 * lab/src/interrupt.ts). Not forwarding in a terminal's foreground lost a `kill -INT <l4fleet>` from another shell.
 */
const FORWARDED: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

export interface RunLabDeps {
  /** The command line of l4fleet-lab (default: labCommand()). */
  readonly command?: { file: string; args: string[] };
}

/**
 * Runs `l4fleet-lab ARGS...` with inherited stdio; resolves to its exit status. For the child's lifetime SIGINT,
 * SIGTERM and SIGHUP are passed on to it: ended by its default, `l4fleet` left the lab command running orphaned,
 * holding the lab's lock (a following `lab down` waited for it). A child a signal ended: 128 + its number, as a shell
 * reports it.
 */
export function runLab(args: readonly string[], deps: RunLabDeps = {}): Promise<number> {
  const { file, args: pre } = deps.command ?? labCommand();
  return new Promise<number>((resolve, reject) => {
    const child = spawn(file, [...pre, ...args], { stdio: 'inherit' });
    const forward = (sig: NodeJS.Signals) => {
      child.kill(sig);
    };
    for (const sig of FORWARDED) process.on(sig, forward);
    const done = () => {
      for (const sig of FORWARDED) process.removeListener(sig, forward);
    };
    child.on('error', (err) => {
      done();
      reject(new CliError(`lab: cannot run ${file} (build the workspace: npm ci && npm run build)`, 1, { cause: err }));
    });
    child.on('exit', (c, signal) => {
      done();
      // A lab killed by a signal printed nothing about it: say so here. An exit status came with its own message.
      if (c === null && signal) reject(new CliError(`lab: ended by ${signal}`, 128 + (constants.signals[signal] ?? 0)));
      else resolve(c ?? 0);
    });
  });
}

/** Lists `lab` in `l4fleet --help`; runCli() hands `l4fleet lab ...` to runLab() before commander parses it. */
export function registerLab(program: Command): void {
  program
    .command('lab')
    .description('bring up and drive a lab fleet (router, nodes, backends, client); see `l4fleet lab --help`')
    .helpOption(false)
    .allowUnknownOption()
    .allowExcessArguments()
    .argument('[args...]', 'lab subcommand and its options')
    .action(async (args: string[]) => {
      const code = await runLab(args);
      if (code !== 0) throw new CliError([], code);
    });
}
