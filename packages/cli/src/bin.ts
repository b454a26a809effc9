#!/usr/bin/env node
import { agentCommandRan, holdEarlyHangup } from './early-hangup.js';
import { endQuietlyOnClosedOutput } from './io.js';
import { dropIpServernameWarning } from './warnings.js';

// The node agent gets `systemctl reload` (SIGHUP) at any time, also in the first second, before the program below
// has loaded: held from here to the end (early-hangup.ts); the running agent's own handler acts meanwhile. The
// program is loaded after that, not imported statically: static imports would all load before this line ran. Any
// command line with the word may be the agent's; the program gives SIGHUP back once it knows the command is another
// (`get members --pool agent`, `backend agent`: program.ts).
if (process.argv.slice(2).includes('agent')) holdEarlyHangup();
dropIpServernameWarning();
// A reader that went away (`| head -1`) ends that output, not the command with a stack trace (io.ts).
endQuietlyOnClosedOutput();
const { runCli } = await import('./program.js');
const code = await runCli(process.argv.slice(2));
// Ending by itself, Node first closes its signal handlers (SIGHUP's default, exit, is back) and then takes some ms to
// tear down: a reload then would end the agent by SIGHUP instead of its exit code. process.exit() closes none of them
// Only after stdout and stderr took what was written (a pipe's share of it is asynchronous: cut at 64 KiB otherwise);
// pino flushes at 'exit'; the command has closed what it opened.
if (agentCommandRan()) {
  await Promise.all([process.stdout, process.stderr].map((s) => new Promise((done) => s.write('', done))));
  process.exit(code);
}
process.exitCode = code;
