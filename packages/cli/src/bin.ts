#!/usr/bin/env node
import { runCli } from './program.js';
import { dropIpServernameWarning } from './warnings.js';

dropIpServernameWarning();
process.exitCode = await runCli(process.argv.slice(2));
