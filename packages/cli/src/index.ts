export { CliError, type CliIo, EXIT_FAILURE, EXIT_OK, EXIT_OUTCOME_UNKNOWN, EXIT_USAGE, processIo } from './io.js';
export { type CliDeps, createProgram, runCli } from './program.js';
