#!/usr/bin/env node
import { runLabCli } from './cli.js';

process.exitCode = await runLabCli(process.argv.slice(2));
// Daemons were started detached; nothing of ours should keep the process alive after the command.
process.exit();
