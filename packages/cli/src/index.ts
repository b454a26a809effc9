export { CliError, type CliIo, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, processIo } from './io.js';
export { createProgram, runCli } from './program.js';
