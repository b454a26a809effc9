/**
 * `l4fleet lab ...` runs the lab's own command, `l4fleet-lab` (workspace `@l4fleet/lab`), with the same arguments.
 * The CLI does not import the lab: lab/ builds on the packages, never the other way round (docs/design/0001).
 * It is resolved like a git subcommand: the installed workspace package first, then PATH.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
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

/** Runs `l4fleet-lab ARGS...` with inherited stdio; resolves to its exit status. */
export function runLab(args: readonly string[]): Promise<number> {
  const { file, args: pre } = labCommand();
  return new Promise<number>((resolve, reject) => {
    const child = spawn(file, [...pre, ...args], { stdio: 'inherit' });
    child.on('error', (err) =>
      reject(new CliError(`lab: cannot run ${file} (build the workspace: npm ci && npm run build)`, 1, { cause: err })),
    );
    child.on('exit', (c, signal) => {
      // A lab killed by a signal printed nothing about it: say so here. An exit status came with its own message.
      if (c === null && signal) reject(new CliError(`lab: ended by ${signal}`, 1));
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
