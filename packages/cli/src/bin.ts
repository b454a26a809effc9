#!/usr/bin/env node
import { holdEarlyHangup } from './early-hangup.js';
import { dropIpServernameWarning } from './warnings.js';

// The node agent gets `systemctl reload` (SIGHUP) at any time, also in the first second, before the program below
// has loaded: held from here to the end (early-hangup.ts); the running agent's own handler acts meanwhile. The
// program is loaded after that, not imported statically: static imports would all load before this line ran.
const agent = process.argv.slice(2).includes('agent');
if (agent) holdEarlyHangup();
dropIpServernameWarning();
const { runCli } = await import('./program.js');
const code = await runCli(process.argv.slice(2));
// Ending by itself, Node first closes its signal handlers (SIGHUP's default, exit, is back) and then takes some ms to
// tear down: a reload then would end the agent by SIGHUP instead of its exit code. process.exit() closes none of them
// (stdout and stderr are written synchronously on Linux; pino flushes at 'exit'; the command has closed what it opened).
if (agent) process.exit(code);
process.exitCode = code;
